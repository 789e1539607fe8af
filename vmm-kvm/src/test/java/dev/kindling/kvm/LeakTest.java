package dev.kindling.kvm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.memory.MemoryRegion;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Creating and closing many VMs leaves no descriptor and no mapping behind. */
@SuppressWarnings("try") // resources such as guest RAM are held open by try-with-resources, unreferenced
class LeakTest {
    private static final int VMS = 200;

    @Test
    void twoHundredVmsWithAVcpuEachLeakNothing() throws Exception {
        try (Kvm kvm = KvmTestSupport.openKvm()) {
            cycle(kvm, 10); // warm up: class loading, JIT and thread-local buffers settle first
            try (Vm vm = kvm.createVm(); Vcpu vcpu = vm.createVcpu(0)) {
                Snapshot open = Snapshot.take();
                assertThat(open.kvmFds).as("the probe sees the vm and vcpu fds").isGreaterThanOrEqualTo(2);
                assertThat(open.kvmMaps).as("the probe sees the vcpu mapping").isGreaterThanOrEqualTo(1);
            }
            Snapshot before = Snapshot.take();
            cycle(kvm, VMS);
            Snapshot after = Snapshot.take();
            // KVM objects show up by name: anon_inode:kvm-vm, anon_inode:kvm-vcpu:N.
            assertThat(after.kvmFds).as("kvm descriptors").isEqualTo(before.kvmFds);
            assertThat(after.kvmMaps).as("kvm mappings").isEqualTo(before.kvmMaps);
            assertThat(after.fds).as("descriptors").isEqualTo(before.fds);
            // The JVM itself moves its own count by one or two (code cache, GC); a leak here would be >= 200.
            assertThat(Math.abs(after.maps - before.maps)).as("mappings: before %d, after %d", before.maps, after.maps)
                    .isLessThanOrEqualTo(4);
        }
    }

    private static void cycle(Kvm kvm, int n) {
        for (int i = 0; i < n; i++) {
            try (Vm vm = kvm.createVm(); MemoryRegion ram = MemoryRegion.anonymous(0, 0x10000)) {
                vm.setUserMemoryRegion(0, ram);
                Vcpu vcpu = vm.createVcpu(0);
                vcpu.setImmediateExit(true);
                assertThat(vcpu.run()).isEqualTo(VcpuExit.INTERRUPTED);
                if (i % 2 == 0) {
                    vcpu.close(); // else Vm.close() closes it
                }
            }
        }
    }

    private record Snapshot(long fds, long kvmFds, long maps, long kvmMaps) {
        static Snapshot take() throws IOException {
            long fds = 0, kvmFds = 0;
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                for (Path p : s.toList()) {
                    fds++;
                    try {
                        if (Files.readSymbolicLink(p).toString().contains("kvm-")) {
                            kvmFds++;
                        }
                    } catch (IOException | UncheckedIOException gone) {
                        // the descriptor used to list the directory is gone by now
                    }
                }
            }
            List<String> maps = Files.readAllLines(Path.of("/proc/self/maps"));
            long kvmMaps = maps.stream().filter(l -> l.contains("kvm-")).count();
            return new Snapshot(fds, kvmFds, maps.size(), kvmMaps);
        }
    }
}
