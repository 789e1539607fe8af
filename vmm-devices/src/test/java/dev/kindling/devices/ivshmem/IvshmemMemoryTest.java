package dev.kindling.devices.ivshmem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.Mapping;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IvshmemMemoryTest {
    @TempDir
    Path dir;

    @Test
    void createdMemoryIsSharedWithASecondMappingOfItsFd() {
        try (IvshmemMemory m = IvshmemMemory.create("ivshmem-test", 1 << 16)) {
            assertEquals(1 << 16, m.size());
            assertEquals(1 << 16, m.segment().byteSize());
            assertEquals(1 << 16, Libc.fileSize(m.fd()));
            try (Mapping other = Mapping.shared(m.fd(), 0, m.size())) {
                m.segment().set(ValueLayout.JAVA_LONG, 4096, 0x1122334455667788L);
                assertEquals(0x1122334455667788L, other.segment().get(ValueLayout.JAVA_LONG, 4096));
                other.segment().set(ValueLayout.JAVA_INT, 60_000, 42);
                assertEquals(42, m.segment().get(ValueLayout.JAVA_INT, 60_000));
            }
            int seals = Libc.seals(m.fd());
            assertTrue((seals & Libc.F_SEAL_SHRINK) != 0, "sealed against shrinking: " + seals);
            assertThrows(RuntimeException.class, () -> Libc.ftruncate(m.fd(), 4096));
        }
    }

    @Test
    void sizeMustBeAPowerOfTwoOfAtLeastAPage() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> IvshmemMemory.create("x", 3 * 4096));
        assertTrue(e.getMessage().contains("power of two"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> IvshmemMemory.create("x", 2048));
        assertTrue(e.getMessage().contains("at least 4096"), e.getMessage());
    }

    @Test
    void openMapsAFileAndRefusesOneTooSmall() throws Exception {
        Path f = dir.resolve("shm");
        Files.write(f, new byte[16384]);
        try (IvshmemMemory m = IvshmemMemory.open(f, 8192)) {
            m.segment().set(ValueLayout.JAVA_BYTE, 8191, (byte) 7);
        }
        assertEquals(7, Files.readAllBytes(f)[8191]);
        int before = IvshmemFakes.openFds();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> IvshmemMemory.open(f, 32768));
        assertTrue(e.getMessage().contains("16384 bytes is smaller than the BAR of 32768 bytes"), e.getMessage());
        assertEquals(before, IvshmemFakes.openFds(), "the refused file's fd is closed");
        assertThrows(IllegalArgumentException.class, () -> IvshmemMemory.open(f, 12288));
    }

    @Test
    void adoptChecksTheSizeAndClosesTheFdOnFailure() {
        Fd fd = Fd.adopt(Libc.memfdCreate("small", 0), "server memfd");
        Libc.ftruncate(fd, 4096);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> IvshmemMemory.adopt(fd, 8192));
        assertTrue(e.getMessage().contains("shared memory server memfd of 4096 bytes is smaller than the BAR of 8192 bytes"),
                e.getMessage());
        assertFalse(fd.isOpen());

        Fd good = Fd.adopt(Libc.memfdCreate("good", 0), "server memfd");
        Libc.ftruncate(good, 8192);
        try (IvshmemMemory m = IvshmemMemory.adopt(good, 4096)) {
            assertEquals(4096, m.size());
            assertTrue(m.fd().isOpen());
        }
        assertFalse(good.isOpen());
    }

    @Test
    void closeLeaksNoFd() {
        int before = IvshmemFakes.openFds();
        for (int i = 0; i < 20; i++) {
            IvshmemMemory m = IvshmemMemory.create("leak", 4096);
            m.segment().set(ValueLayout.JAVA_INT, 0, i);
            m.close();
            assertThrows(IllegalStateException.class, () -> m.segment().get(ValueLayout.JAVA_INT, 0));
        }
        assertEquals(before, IvshmemFakes.openFds());
    }
}
