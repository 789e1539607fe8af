package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Places a kernel image in guest memory. Every implementation validates the whole image against the memory
 * first ({@link #inspect}) and writes only if nothing is wrong, so a failed load leaves guest memory as it was.
 */
public interface KernelLoader {
    /** Parses {@code image} and checks where it would go, writing nothing; returns what {@link #load} would. */
    LoadedKernel inspect(GuestMemory memory, byte[] image);

    /** {@link #inspect}, then writes the image into {@code memory}. */
    LoadedKernel load(GuestMemory memory, byte[] image);

    /** The loader for {@code image}: {@link ElfLoader} for ELF, {@link BzImageLoader} for a bzImage. */
    static KernelLoader forImage(byte[] image) {
        if (ElfLoader.isElf(image)) {
            return new ElfLoader();
        }
        if (BzImageLoader.isBzImage(image)) {
            return new BzImageLoader();
        }
        throw new BootException("kernel image is neither ELF nor bzImage (" + image.length + " bytes, no ELF magic,"
                + " no 0xAA55 boot flag at 0x1fe with \"HdrS\" at 0x202)");
    }

    /** Reads a whole image file. */
    static byte[] read(Path path) {
        try {
            return Files.readAllBytes(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path, e);
        }
    }
}
