package dev.kindling.vfio;

import static dev.kindling.sys.CLayouts.offsetOf;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kindling.kvm.KvmConstants;
import dev.kindling.kvm.KvmIoctls;
import dev.kindling.kvm.KvmStructs;
import dev.kindling.kvm.Vm;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * KVM's VFIO pseudo device (KVM_DEV_TYPE_VFIO): tells KVM which VFIO groups the VM uses, so that
 * it keeps their devices' DMA coherent with the guest's caches and lets their interrupts take the
 * in-kernel paths.
 */
public final class KvmVfio implements AutoCloseable {
    private static final long FLAGS = offsetOf(KvmStructs.KVM_DEVICE_ATTR, "flags"),
            GROUP = offsetOf(KvmStructs.KVM_DEVICE_ATTR, "group"),
            ATTR = offsetOf(KvmStructs.KVM_DEVICE_ATTR, "attr"),
            ADDR = offsetOf(KvmStructs.KVM_DEVICE_ATTR, "addr");

    private final Fd fd;

    private KvmVfio(Fd fd) {
        this.fd = fd;
    }

    /** Creates the pseudo device on {@code vm}; a {@link VfioException} if this KVM has none. */
    public static KvmVfio create(Vm vm) {
        if (!vm.canCreateDevice(KvmConstants.DEV_TYPE_VFIO)) {
            throw new VfioException("KVM has no VFIO device (KVM_CREATE_DEVICE of KVM_DEV_TYPE_VFIO: ENODEV): "
                    + "the host kernel lacks CONFIG_KVM_VFIO");
        }
        return new KvmVfio(vm.createDevice(KvmConstants.DEV_TYPE_VFIO));
    }

    public void addGroup(VfioGroup group) {
        groupAttr(KvmConstants.DEV_VFIO_GROUP_ADD, group.fd(), "add VFIO group " + group.number());
    }

    public void removeGroup(VfioGroup group) {
        groupAttr(KvmConstants.DEV_VFIO_GROUP_DEL, group.fd(), "remove VFIO group " + group.number());
    }

    /** KVM_DEV_VFIO_GROUP's {@code attr} with {@code groupFd}; package-private for the test of a refused fd. */
    void groupAttr(int attr, Fd groupFd, String what) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fdValue = arena.allocateFrom(JAVA_INT, groupFd.value());
            MemorySegment s = arena.allocate(KvmStructs.KVM_DEVICE_ATTR);
            s.set(JAVA_INT, FLAGS, 0);
            s.set(JAVA_INT, GROUP, KvmConstants.DEV_VFIO_GROUP);
            s.set(JAVA_LONG, ATTR, attr);
            s.set(JAVA_LONG, ADDR, fdValue.address());
            Libc.ioctl(fd, KvmIoctls.KVM_SET_DEVICE_ATTR, s);
        } catch (SyscallException e) {
            throw new VfioException("KVM refused to " + what + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        fd.close();
    }
}
