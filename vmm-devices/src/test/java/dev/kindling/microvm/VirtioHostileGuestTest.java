package dev.kindling.microvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.device.Device;
import dev.kindling.devices.virtio.blk.BlkOptions;
import dev.kindling.kvm.testing.TestGuests;
import dev.kindling.machine.StopReason;
import dev.kindling.testing.HostResources;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The freestanding {@code hostile} guest drives virtio-blk on transport 0 as a driver would, then
 * sends malformed descriptor chains, each followed by a valid request (guests/hostile.c). One boot
 * serves every test here: the host must survive each chain, never report a bad chain's request OK,
 * leave memory and disk sectors it must not touch alone, and serve the next valid request.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class VirtioHostileGuestTest {
    static final int SECTOR = 512;
    static final int SECTORS = 1024;
    static final int MEMORY_MIB = 64;
    static final long REPORT_PORT = 0x6a0;

    // driver steps (keys in hostile.c)
    static final int K_MAGIC = 1, K_VERSION = 2, K_DEVICE_ID = 3, K_FEATURES_LO = 4, K_FEATURES_HI = 5,
            K_ACCEPTED_LO = 6, K_ACCEPTED_HI = 7, K_FEATURES_OK = 8, K_CAPACITY_LO = 9, K_CAPACITY_HI = 10,
            K_GENERATION = 11, K_QUEUE_MAX = 12, K_DRIVER_OK = 13, K_WRITE = 14, K_WRITE_ISR = 15,
            K_READ_BACK = 16, K_READ_BACK_DATA = 17, K_READ_INITIAL = 18, K_READ_INITIAL_DATA = 19,
            K_FLUSH = 20, K_IRQ_WRITE = 21, K_IRQ_USED = 22, K_IRQ_READ_DATA = 23, K_DONE = 0xff;
    // per-case fields
    static final int F_WAIT = 0, F_ID = 1, F_LEN = 2, F_STATUS = 3, F_DEVSTATUS = 4, F_RESET = 5, F_CHECK = 6,
            F_NEXT_WRITE = 7, F_NEXT_READ = 8, F_NEXT_DATA = 9;
    static final int BLK_S_OK = 0, BLK_S_IOERR = 1, BLK_S_UNSUPP = 2, UNTOUCHED = 0xee;
    static final int STATUS_DRIVER_SET_UP = 0x0b, STATUS_DRIVER_OK = 0x0f, NEEDS_RESET = 0x40;
    static final int F_INDIRECT_DESC = 28, F_EVENT_IDX = 29;

    /** The chains, numbered as in hostile.c; {@code sector}: the disk sector a bad write aimed at, which must keep its data. */
    enum Chain {
        ADDR_HIGH(1, -1), ADDR_4G(2, -1), ADDR_WRAP(3, -1), LEN_PAST_RAM(4, -1), READ_STRADDLES_RAM(5, -1),
        WRITE_OUTSIDE_RAM(6, 301), CHAIN_TOO_LONG(7, -1), LOOP(8, -1), NESTED_INDIRECT(9, -1), HEAD_PAST_SIZE(10, -1),
        HEADER_WRITE_ONLY(11, 303), STATUS_READ_ONLY(12, 304), READ_INTO_READ_ONLY(13, -1), AVAIL_JUMP(14, -1);

        final int number, sector;

        Chain(int number, int sector) {
            this.number = number;
            this.sector = sector;
        }

        int key(int field) {
            return 0x100 + 16 * number + field;
        }
    }

    /** Port 0x6a0 takes a key, 0x6a4 its value. */
    static final class ReportPort implements Device {
        private final Map<Integer, Long> values = new LinkedHashMap<>();
        private long key = -1;

        public String name() {
            return "hostile-report";
        }

        public long read(long offset, int size) {
            return 0;
        }

        public synchronized void write(long offset, int size, long value) {
            if (offset == 0) {
                key = value;
            } else if (offset == 4 && key >= 0) {
                values.put((int) key, value);
                key = -1;
            }
        }

        synchronized Map<Integer, Long> values() {
            return Map.copyOf(values);
        }
    }

    @TempDir
    static Path tmp;
    Map<Integer, Long> report;
    byte[] disk;
    Optional<StopReason> stop;
    List<?> deviceErrors;
    HostResources before, after;

    static byte initial(int sector, int i) {
        return (byte) (sector * 31 + i);
    }

    static byte written(int sector, int i, int tag) {
        return (byte) (sector * 7 + i * 3 + tag);
    }

    @BeforeAll
    void runGuestOnce() throws Exception {
        TestGuests.assumeKvm();
        Path kernel = TestGuests.elf("hostile");
        Path image = tmp.resolve("disk.img");
        byte[] content = new byte[SECTORS * SECTOR];
        for (int s = 0; s < SECTORS; s++) {
            for (int i = 0; i < SECTOR; i++) {
                content[s * SECTOR + i] = initial(s, i);
            }
        }
        Files.write(image, content);
        ReportPort port = new ReportPort();
        before = HostResources.now();
        try (Microvm vm = Microvm.builder().name("hostile").memoryMib(MEMORY_MIB).kernel(kernel)
                .virtioBlk(image, BlkOptions.defaults())
                .device(DeviceSpec.pio(REPORT_PORT, 8, () -> port)).build()) {
            vm.start();
            stop = vm.awaitExit(Duration.ofMinutes(3));
            deviceErrors = vm.deviceErrors();
        }
        after = HostResources.now();
        report = port.values();
        disk = Files.readAllBytes(image);
    }

    long value(int key) {
        assertThat(report).as("the guest reported key 0x%x", key).containsKey(key);
        return report.get(key);
    }

    @Test
    void guestRanToItsEndAndTheMachineLeftNothingBehind() {
        assertThat(stop).contains(new StopReason.Reset(StopReason.ResetCause.I8042));
        assertThat(report).containsKey(K_DONE);
        assertThat(deviceErrors).as("a guest's bad chains are not the host's fatal errors").isEmpty();
        // the first machine in this JVM maps code and arenas that stay: mappings are MicrovmLeakTest's to count
        assertThat(after.fds()).as("open descriptors").isEqualTo(before.fds());
        assertThat(after.threadsStartedSince(before)).as("threads started since, and still alive").isEmpty();
    }

    @Test
    void driverSeesAVersion2BlockDeviceAndNegotiates() {
        assertThat(value(K_MAGIC)).isEqualTo(0x74726976L);
        assertThat(value(K_VERSION)).isEqualTo(2);
        assertThat(value(K_DEVICE_ID)).isEqualTo(2);
        assertThat(value(K_FEATURES_HI) & 1).as("VERSION_1").isEqualTo(1);
        assertThat(value(K_FEATURES_LO) >> F_INDIRECT_DESC & 1).as("RING_INDIRECT_DESC offered").isEqualTo(1);
        assertThat(value(K_FEATURES_LO) >> F_EVENT_IDX & 1).as("RING_EVENT_IDX offered").isEqualTo(1);
        assertThat(value(K_ACCEPTED_LO)).isEqualTo((1L << F_INDIRECT_DESC) | (1L << F_EVENT_IDX));
        assertThat(value(K_ACCEPTED_HI)).isEqualTo(1);
        assertThat(value(K_FEATURES_OK)).as("status after FEATURES_OK").isEqualTo(STATUS_DRIVER_SET_UP);
        assertThat(value(K_CAPACITY_LO) | value(K_CAPACITY_HI) << 32).as("capacity in sectors").isEqualTo(SECTORS);
        assertThat(value(K_QUEUE_MAX)).isGreaterThanOrEqualTo(16);
        assertThat(value(K_DRIVER_OK)).isEqualTo(STATUS_DRIVER_OK);
    }

    @Test
    void validRequestsWriteReadAndFlush() {
        assertThat(value(K_WRITE)).as("two-buffer write of sectors 8-9").isEqualTo(BLK_S_OK);
        assertThat(value(K_WRITE_ISR)).as("no interrupt while the driver suppresses them (used_event)").isZero();
        assertThat(value(K_READ_BACK)).isEqualTo(BLK_S_OK);
        assertThat(value(K_READ_BACK_DATA)).as("sectors 8-9 read back").isEqualTo(1);
        assertThat(value(K_READ_INITIAL)).isEqualTo(BLK_S_OK);
        assertThat(value(K_READ_INITIAL_DATA)).as("sector 100 as the host wrote it").isEqualTo(1);
        assertThat(value(K_FLUSH)).isEqualTo(BLK_S_OK);
        for (int s : new int[] {8, 9}) {
            assertSector(s, 1);
        }
    }

    @Test
    void aRequestCompletesByInterruptOnIrq5() {
        assertThat(value(K_IRQ_WRITE)).isEqualTo(BLK_S_OK);
        assertThat(value(K_IRQ_USED)).as("vector of IOAPIC pin 5 taken after the used element").isEqualTo(1);
        assertThat(value(K_IRQ_READ_DATA)).isEqualTo(1);
        assertSector(10, 2);
    }

    @ParameterizedTest
    @EnumSource(Chain.class)
    void hostileChainFailsAloneAndTheNextRequestWorks(Chain c) {
        long status = value(c.key(F_STATUS));
        long devStatus = value(c.key(F_DEVSTATUS));
        String outcome = "wait " + value(c.key(F_WAIT)) + ", used len " + value(c.key(F_LEN)) + ", status byte 0x"
                + Long.toHexString(status) + ", device status 0x" + Long.toHexString(devStatus);
        assertThat(status).as("%s: the bad request is never OK (%s)", c, outcome).isNotEqualTo(BLK_S_OK);
        assertThat(status).as("%s: failed with an error status or left alone (%s)", c, outcome)
                .isIn((long) BLK_S_IOERR, (long) BLK_S_UNSUPP, (long) UNTOUCHED);
        assertThat(value(c.key(F_CHECK))).as("%s: memory the device must not write is intact (%s)", c, outcome).isEqualTo(1);
        if (c == Chain.STATUS_READ_ONLY) {
            assertThat(status).as("a read-only status byte is not written").isEqualTo(UNTOUCHED);
        }
        if (c == Chain.AVAIL_JUMP) {
            assertThat(devStatus & NEEDS_RESET).as("an avail idx past the queue breaks the queue").isEqualTo(NEEDS_RESET);
        }
        System.out.printf("hostile chain %-22s %s%n", c, outcome);
        if ((devStatus & NEEDS_RESET) != 0) {
            assertThat(value(c.key(F_RESET))).as("%s: set up again after the reset", c).isEqualTo(STATUS_DRIVER_SET_UP);
        }
        if (c.sector >= 0) {
            assertSector(c.sector, 0);
        }
        assertThat(value(c.key(F_NEXT_WRITE))).as("%s: next valid write", c).isEqualTo(BLK_S_OK);
        assertThat(value(c.key(F_NEXT_READ))).as("%s: next valid read", c).isEqualTo(BLK_S_OK);
        assertThat(value(c.key(F_NEXT_DATA))).as("%s: next read returns what was written", c).isEqualTo(1);
        assertSector(200 + c.number, 0x40 + c.number);
    }

    @Test
    void noOtherSectorChanged() {
        for (int s = 0; s < SECTORS; s++) {
            boolean writtenByGuest = s == 8 || s == 9 || s == 10 || (s > 200 && s <= 200 + Chain.values().length);
            if (!writtenByGuest) {
                assertSector(s, 0);
            }
        }
    }

    /** Sector {@code s} of the image holds the host's pattern ({@code tag} 0) or the guest's with {@code tag}. */
    void assertSector(int s, int tag) {
        byte[] want = new byte[SECTOR];
        for (int i = 0; i < SECTOR; i++) {
            want[i] = tag == 0 ? initial(s, i) : written(s, i, tag);
        }
        byte[] got = new byte[SECTOR];
        System.arraycopy(disk, s * SECTOR, got, 0, SECTOR);
        assertThat(got).as("sector %d of the image", s).isEqualTo(want);
    }
}
