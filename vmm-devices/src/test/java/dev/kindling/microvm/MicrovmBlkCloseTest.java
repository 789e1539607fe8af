package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.device.Device;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.testing.HostResources;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Closing a microVM while its guest keeps the virtio-blk disk busy (guests/busyblk.c writes sector
 * k, k = 0, 1, ..., and reports each acknowledged one) loses no acknowledged write, frees the image
 * for the next VM, and leaves no thread, descriptor or mapping behind: 200 times.
 */
class MicrovmBlkCloseTest {
    private static final int SECTOR = 512;
    private static final long SECTORS = 1 << 14;
    private static final int MAGIC = 0x6b646c62;
    private static final Duration BUSY = Duration.ofSeconds(20);

    @TempDir
    Path tmp;

    /** Ports 0x6a8 (the last acknowledged k) and 0x6ac (a failure code) of busyblk. */
    private static final class AckPort implements Device {
        private long acked = -1;
        private long failure;
        private boolean done;

        @Override
        public String name() {
            return "busyblk-acks";
        }

        @Override
        public long read(long offset, int size) {
            return Device.ones(size);
        }

        @Override
        public synchronized void write(long offset, int size, long value) {
            long v = value & 0xffffffffL;
            if (offset == 0 && v == 0xffffffffL) {
                done = true;
            } else if (offset == 0) {
                acked = v;
            } else if (offset == 4) {
                failure = v;
            }
            notifyAll();
        }

        /** Waits until {@code count} writes are acknowledged; false on a failure, the disk's end or the timeout. */
        synchronized boolean awaitAcks(long count, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (acked + 1 < count && failure == 0 && !done) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                wait(Math.max(1, left / 1_000_000));
            }
            return acked + 1 >= count;
        }

        synchronized long acked() {
            return acked;
        }

        synchronized long failure() {
            return failure;
        }
    }

    /** One VM, closed once its guest has {@code target} writes acknowledged; returns how many it had then. */
    private long cycle(int i, long target) throws Exception {
        Path image = tmp.resolve("busy-" + i + ".img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(SECTORS * SECTOR);
        }
        AckPort port = new AckPort();
        try (Microvm vm = Microvm.builder().name("busy" + i).memoryMib(16).kernel(TestGuests.elf("busyblk"))
                .virtioBlk(image).device(DeviceSpec.pio(0x6a8, 8, () -> port)).build()) {
            vm.start();
            boolean busy = port.awaitAcks(target, BUSY);
            assertThat(port.failure()).as("busyblk's failure code (1 probe, 2 negotiation, 3 queue, 4 request)").isZero();
            assertThat(busy).as("cycle " + i + ": " + target + " writes acknowledged within " + BUSY + "; had "
                    + (port.acked() + 1) + ", state " + vm.state()).isTrue();
        } // closed while the guest writes
        long acked = port.acked();
        assertAcknowledgedWritesAreThere(image, acked);
        assertUnlocked(image);
        Files.delete(image);
        return acked + 1;
    }

    /** Every acknowledged sector holds its header; the sector in flight at close holds it or nothing. */
    private static void assertAcknowledgedWritesAreThere(Path image, long acked) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(image)) {
            for (long k = 0; k <= acked + 1 && k < SECTORS; k++) {
                b.clear();
                while (b.hasRemaining() && ch.read(b, k * SECTOR + b.position()) > 0) {
                    // read the whole sector
                }
                int w0 = b.getInt(0), w1 = b.getInt(4), w2 = b.getInt(8);
                boolean written = w0 == (int) k && w1 == ~(int) k && w2 == MAGIC;
                if (k <= acked) {
                    assertThat(written).as("acknowledged sector " + k + " of " + (acked + 1) + ": words "
                            + Integer.toHexString(w0) + " " + Integer.toHexString(w1) + " " + Integer.toHexString(w2)).isTrue();
                } else {
                    assertThat(written || (w0 == 0 && w1 == 0 && w2 == 0)).as("sector " + k + " in flight at close").isTrue();
                }
            }
        }
    }

    /** The closed VM's lock is gone: another VM could open the image for writing. */
    private static void assertUnlocked(Path image) {
        try (Fd fd = Fd.adopt(Libc.open(image.toString(), Libc.O_RDWR), "image")) {
            assertThat(Libc.flock(fd, Libc.LOCK_EX | Libc.LOCK_NB)).as("exclusive lock on " + image).isTrue();
        }
    }

    @Test
    @Timeout(300)
    void closingWhileTheDiskIsBusyLosesNothingAcknowledgedAndLeavesNothing() throws Exception {
        TestGuests.assumeKvm();
        cycle(-2, 1);
        cycle(-1, 8);
        HostResources before = HostResources.now();
        long started = System.nanoTime();
        long acks = 0;
        for (int i = 0; i < 200; i++) {
            acks += cycle(i, 1 + i % 4); // close after 1..4 acknowledged writes, the next one in flight or not
        }
        long ms = (System.nanoTime() - started) / 1_000_000;
        // 200 cycles: a mapping left per VM would be 200; the JVM's own growth over busy cycles is a few dozen
        HostResources.now().assertNothingLeftSince(before, 32);
        System.out.println("MicrovmBlkCloseTest: 200 cycles in " + ms + " ms, " + acks + " acknowledged writes");
    }
}
