package dev.kindling.kvm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Failures name the call and the errno. */
class ErrorPathTest {
    @Test
    void missingDeviceNamesThePath() {
        assertThatThrownBy(() -> Kvm.open("/nonexistent/kvm"))
                .isInstanceOf(SyscallException.class)
                .hasMessage("open(/nonexistent/kvm) failed: ENOENT (2)");
    }

    @Test
    void aDeviceThatIsNotKvmFailsTheVersionIoctl() {
        assertThatThrownBy(() -> Kvm.open("/dev/null"))
                .isInstanceOf(SyscallException.class)
                .hasMessage("ioctl(KVM_GET_API_VERSION) failed: ENOTTY (25)");
    }

    @Test
    void ioctlOnABadFdNamesTheCall() {
        // A number far above any open descriptor; never closed, since it was never open.
        Fd bogus = Fd.adopt(1_000_000, "bogus");
        assertThatThrownBy(() -> Libc.ioctl(bogus, KvmIoctls.KVM_CHECK_EXTENSION, Capability.IRQFD.number()))
                .isInstanceOf(SyscallException.class)
                .hasMessage("ioctl(KVM_CHECK_EXTENSION) failed: EBADF (9)")
                .extracting(e -> ((SyscallException) e).errno()).isEqualTo(Errno.EBADF);
        assertThat(Libc.ioctlRaw(1_000_000, KvmIoctls.KVM_RUN, 0)).isEqualTo(-Errno.EBADF);
    }

    @Test
    void closedObjectsSayWhatIsClosed() {
        try (Kvm kvm = KvmTestSupport.openKvm()) {
            Vm vm = kvm.createVm();
            Vcpu vcpu = vm.createVcpu(0);
            vm.close();
            assertThat(vm.vcpus()).isEmpty();
            assertThatThrownBy(vcpu::getRegs).isInstanceOf(IllegalStateException.class).hasMessage("vcpu 0 is closed");
            assertThatThrownBy(vcpu::run).isInstanceOf(IllegalStateException.class).hasMessage("vcpu 0 is closed");
            assertThatThrownBy(() -> vm.createVcpu(1)).isInstanceOf(IllegalStateException.class).hasMessage("kvm vm is closed");
            vm.close(); // idempotent
            vcpu.close();
        }
    }

    @Test
    void misalignedMemoryRegionsAreRejectedWithEinval() {
        try (Kvm kvm = KvmTestSupport.openKvm(); Vm vm = kvm.createVm();
                MemoryRegion ram = MemoryRegion.anonymous(0, 0x10000)) {
            assertThatThrownBy(() -> vm.setUserMemoryRegion(0, 0, 0x1001, ram.segment().asSlice(0, 0x1000)))
                    .isInstanceOf(SyscallException.class)
                    .hasMessage("ioctl(KVM_SET_USER_MEMORY_REGION) failed: EINVAL (22)");
            assertThatThrownBy(() -> vm.setUserMemoryRegion(0, 0, 0x1000, ram.segment().asSlice(1, 0x1000)))
                    .isInstanceOf(SyscallException.class)
                    .hasMessage("ioctl(KVM_SET_USER_MEMORY_REGION) failed: EINVAL (22)");
            assertThatThrownBy(() -> vm.setUserMemoryRegion(0, 0, 0, MemorySegment.ofArray(new byte[4096])))
                    .isInstanceOf(IllegalArgumentException.class);
            // Removing a slot that does not exist.
            assertThatThrownBy(() -> vm.removeUserMemoryRegion(7))
                    .isInstanceOf(SyscallException.class)
                    .hasMessageStartingWith("ioctl(KVM_SET_USER_MEMORY_REGION) failed");
        }
    }

    @Test
    void unsupportedMsrIsNamed() {
        try (Kvm kvm = KvmTestSupport.openKvm(); Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
            assertThatThrownBy(() -> vcpu.getMsrs(0x10, 0xdead_beef))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("KVM_GET_MSRS read 1 of 2 MSRs: MSR 0xdeadbeef is not supported");
        }
    }
}
