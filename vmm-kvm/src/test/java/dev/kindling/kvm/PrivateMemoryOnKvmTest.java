package dev.kindling.kvm;

import static dev.kindling.kvm.KvmTestSupport.bytes;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.memory.GuestMemory;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.Fd;
import dev.kindling.testing.HostResources;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A clone's memory, a private mapping of a sealed snapshot memfd, as a KVM memory slot. */
@SuppressWarnings("try") // the vCPU is held open by try-with-resources, unreferenced
class PrivateMemoryOnKvmTest {
    private Kvm kvm;

    @BeforeEach
    void open() {
        kvm = KvmTestSupport.openKvm();
    }

    @AfterEach
    void close() {
        if (kvm != null) {
            kvm.close();
        }
    }

    @Test
    void aGuestRunsOnAPrivateCopyOfASealedSnapshotAndItsWritesStayInIt() {
        byte[] code = bytes(
                0xa0, 0x00, 0x30, // mov al, [0x3000]   (from the snapshot)
                0x04, 0x01,       // add al, 1
                0xa2, 0x00, 0x20, // mov [0x2000], al   (a copy-on-write fault in the kernel)
                0xf4);            // hlt
        HostResources before = HostResources.now();
        try (GuestMemory source = new GuestMemory(List.of(MemoryRegion.anonymous(0, KvmTestSupport.RAM_SIZE)))) {
            source.write(KvmTestSupport.CODE, MemorySegment.ofArray(code));
            source.write8(0x3000, (byte) 0x41);
            try (Fd snap = source.saveToMemfd("kvm-snap")) {
                try (GuestMemory clone = GuestMemory.mapPrivate(snap, source.layout());
                        Vm vm = kvm.createVm()) {
                    vm.setUserMemoryRegion(0, clone.regions().getFirst());
                    try (Vcpu vcpu = vm.createVcpu(0)) {
                        KvmTestSupport.startRealMode(vcpu, 0, 0);
                        assertThat(vcpu.run()).isInstanceOf(VcpuExit.Hlt.class);
                    }
                    assertThat(clone.read8(0x2000)).isEqualTo((byte) 0x42);
                    assertThat(clone.privateBytes()).isPositive();
                }
                try (GuestMemory other = GuestMemory.mapPrivate(snap, source.layout())) {
                    assertThat(other.read8(0x2000)).isZero();
                    assertThat(other.read8(0x3000)).isEqualTo((byte) 0x41);
                }
            }
        }
        HostResources.now().assertNothingLeftSince(before);
    }
}
