package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import java.lang.foreign.MemorySegment;
import java.util.List;

/** {@code fileLength} bytes of an image from {@code fileOffset} to {@code address}, then zeros up to {@code memLength}. */
record Piece(int fileOffset, int fileLength, long address, long memLength) {
    AddressRange range() {
        return new AddressRange(address, memLength);
    }

    static void writeAll(GuestMemory memory, byte[] image, List<Piece> pieces) {
        for (Piece p : pieces) {
            MemorySegment dst = memory.slice(p.address, p.memLength);
            MemorySegment.copy(MemorySegment.ofArray(image), p.fileOffset, dst, 0, p.fileLength);
            if (p.memLength > p.fileLength) {
                dst.asSlice(p.fileLength).fill((byte) 0);
            }
        }
    }
}
