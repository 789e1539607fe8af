package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.kindling.sys.Errno;
import dev.kindling.sys.Fd;
import dev.kindling.sys.Ioctl;
import dev.kindling.sys.Libc;
import dev.kindling.sys.SyscallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/** An open {@code /dev/kvm}: system-wide queries and VM creation. Closing it leaves created VMs usable. */
public final class Kvm implements AutoCloseable {
    public static final String DEVICE = "/dev/kvm";

    /** What kvm-ioctls starts with; the buffer doubles while KVM answers E2BIG. */
    private static final int INITIAL_CPUID_ENTRIES = 80;
    private static final int MAX_CPUID_ENTRIES = 4096;
    private static final int MAX_MSRS = 1 << 16;
    /** Without KVM_CAP_NR_VCPUS the API documentation says to assume 4. */
    private static final int DEFAULT_RECOMMENDED_VCPUS = 4;

    private final Fd fd;

    private Kvm(Fd fd) {
        this.fd = fd;
    }

    /** Opens {@value #DEVICE} and checks the API version. */
    public static Kvm open() {
        return open(DEVICE);
    }

    /** Opens a KVM device node at {@code path}; fails if it does not speak KVM API version 12. */
    public static Kvm open(String path) {
        Fd fd = Fd.adopt(Libc.open(path, Libc.O_RDWR), path);
        try {
            int version = Libc.ioctl(fd, KvmIoctls.KVM_GET_API_VERSION, 0);
            if (version != KvmConstants.API_VERSION) {
                throw new UnsupportedOperationException(path + " speaks KVM API version " + version
                        + "; Kindling needs version " + KvmConstants.API_VERSION);
            }
            return new Kvm(fd);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    public Fd fd() {
        return fd;
    }

    public int apiVersion() {
        return Libc.ioctl(fd, KvmIoctls.KVM_GET_API_VERSION, 0);
    }

    /** KVM_CHECK_EXTENSION: 0 if absent, else 1 or a capability-specific number. */
    public int checkExtension(Capability cap) {
        return Libc.ioctl(fd, KvmIoctls.KVM_CHECK_EXTENSION, cap.number());
    }

    public boolean hasExtension(Capability cap) {
        return checkExtension(cap) > 0;
    }

    /** Throws, naming the capability, unless KVM has it. */
    public void requireExtension(Capability cap) {
        if (!hasExtension(cap)) {
            throw new UnsupportedOperationException(fd.what() + " lacks " + cap.macro() + " (" + cap.number() + ")");
        }
    }

    /** Bytes to mmap from a vCPU fd: the kvm_run page plus the PIO and coalesced-MMIO pages. */
    public int vcpuMmapSize() {
        return Libc.ioctl(fd, KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0);
    }

    public int recommendedVcpus() {
        int n = checkExtension(Capability.NR_VCPUS);
        return n > 0 ? n : DEFAULT_RECOMMENDED_VCPUS;
    }

    public int maxVcpus() {
        int n = checkExtension(Capability.MAX_VCPUS);
        return n > 0 ? n : recommendedVcpus();
    }

    /** KVM_GET_SUPPORTED_CPUID: the leaves KVM can virtualize on this host. */
    public List<CpuidEntry> supportedCpuid() {
        return readCpuid(fd, KvmIoctls.KVM_GET_SUPPORTED_CPUID);
    }

    /** Reads a {@code kvm_cpuid2} result, growing the buffer while the kernel answers E2BIG. */
    static List<CpuidEntry> readCpuid(Fd fd, Ioctl request) {
        long header = KvmStructs.KVM_CPUID2.byteSize();
        for (int n = INITIAL_CPUID_ENTRIES; ; n *= 2) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buf = arena.allocate(header + n * CpuidEntry.SIZE, 8);
                buf.set(JAVA_INT, 0, n);
                try {
                    Libc.ioctl(fd, request, buf);
                } catch (SyscallException e) {
                    if (e.errno() == Errno.E2BIG && n < MAX_CPUID_ENTRIES) {
                        continue;
                    }
                    throw e;
                }
                int nent = buf.get(JAVA_INT, 0);
                List<CpuidEntry> entries = new ArrayList<>(nent);
                for (int i = 0; i < nent; i++) {
                    entries.add(CpuidEntry.read(buf, header + i * CpuidEntry.SIZE));
                }
                return List.copyOf(entries);
            }
        }
    }

    /** KVM_GET_MSR_INDEX_LIST: the MSRs a VMM should save and restore. */
    public int[] msrIndexList() {
        long header = KvmStructs.KVM_MSR_LIST.byteSize();
        int n = 0;
        while (true) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buf = arena.allocate(header + 4L * n, 4);
                buf.set(JAVA_INT, 0, n);
                try {
                    Libc.ioctl(fd, KvmIoctls.KVM_GET_MSR_INDEX_LIST, buf);
                } catch (SyscallException e) {
                    // The kernel writes the count it needs into nmsrs before failing with E2BIG.
                    int needed = buf.get(JAVA_INT, 0);
                    if (e.errno() == Errno.E2BIG && needed > n && needed <= MAX_MSRS) {
                        n = needed;
                        continue;
                    }
                    throw e;
                }
                int count = buf.get(JAVA_INT, 0);
                int[] indices = new int[count];
                MemorySegment.copy(buf, JAVA_INT, header, indices, 0, count);
                return indices;
            }
        }
    }

    /** KVM_CREATE_VM (default machine type). */
    public Vm createVm() {
        int mmapSize = vcpuMmapSize();
        int vmFd;
        for (int attempt = 0; ; attempt++) {
            // KVM_CREATE_VM may fail with EINTR when a signal arrives; kvm-ioctls retries too.
            try {
                vmFd = Libc.ioctl(fd, KvmIoctls.KVM_CREATE_VM, 0);
                break;
            } catch (SyscallException e) {
                if (e.errno() != Errno.EINTR || attempt >= 10) {
                    throw e;
                }
            }
        }
        return new Vm(Fd.adopt(vmFd, "kvm vm"), mmapSize);
    }

    @Override
    public void close() {
        fd.close();
    }
}
