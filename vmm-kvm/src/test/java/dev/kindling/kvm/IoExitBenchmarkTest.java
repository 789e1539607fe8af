package dev.kindling.kvm;

import static dev.kindling.kvm.KvmTestSupport.bytes;
import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.memory.MemoryRegion;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * The port-I/O exit round trip, Java against the same loop in C. Opt-in ({@code -Dkindling.bench=true}):
 * it takes a while and its result depends on the machine. Prints nanoseconds per exit for both.
 */
@EnabledIfSystemProperty(named = "kindling.bench", matches = "true")
@SuppressWarnings({"try", "restricted"}) // RAM held by try-with-resources; a clock_gettime downcall
class IoExitBenchmarkTest {
    private static final System.Logger LOG = System.getLogger(IoExitBenchmarkTest.class.getName());
    private static final int EXITS = Integer.getInteger("kindling.bench.exits", 20_000);
    private static final int ROUNDS = Integer.getInteger("kindling.bench.rounds", 21);

    /** mov dx, 0x3f8; again: out dx, al; inc ax; jmp again */
    private static final byte[] GUEST = bytes(0xba, 0xf8, 0x03, 0xee, 0x40, 0xeb, 0xfc);

    private static final String C_TWIN = """
            #include <linux/kvm.h>
            #include <fcntl.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include <sys/ioctl.h>
            #include <sys/mman.h>
            #include <time.h>
            static long long clk(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
            int main(int argc, char **argv) {
                int exits = atoi(argv[1]), rounds = atoi(argv[2]);
                unsigned char code[] = {0xba, 0xf8, 0x03, 0xee, 0x40, 0xeb, 0xfc};
                int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = ioctl(kvm, KVM_CREATE_VM, 0);
                unsigned char *mem = mmap(0, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                memcpy(mem + 0x1000, code, sizeof code);
                struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = 0x4000, .userspace_addr = (unsigned long) mem};
                ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
                int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
                int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
                struct kvm_run *run = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
                struct kvm_sregs s; ioctl(vcpu, KVM_GET_SREGS, &s); s.cs.base = 0; s.cs.selector = 0; ioctl(vcpu, KVM_SET_SREGS, &s);
                struct kvm_regs g = {.rip = 0x1000, .rflags = 2}; ioctl(vcpu, KVM_SET_REGS, &g);
                unsigned long sum = 0;
                for (int k = 0; k < rounds; k++) {
                    long long t0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
                    for (int i = 0; i < exits; i++) {
                        if (ioctl(vcpu, KVM_RUN, 0) < 0) { perror("KVM_RUN"); return 1; }
                        if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x3f8) { fprintf(stderr, "exit %d\\n", run->exit_reason); return 1; }
                        sum += *((unsigned char *) run + run->io.data_offset);
                    }
                    printf("%.1f %.1f\\n", (double) (clk(CLOCK_MONOTONIC) - t0) / exits, (double) (clk(CLOCK_THREAD_CPUTIME_ID) - c0) / exits);
                }
                fprintf(stderr, "checksum %lu\\n", sum);
                return 0;
            }
            """;

    @Test
    void javaAgainstC() throws Exception {
        Path dir = Files.createDirectories(Path.of("target", "kvm-bench"));
        Path source = dir.resolve("io_exit.c");
        Path binary = dir.resolve("io_exit");
        Files.writeString(source, C_TWIN);
        Process gcc = new ProcessBuilder("gcc", "-O2", "-o", binary.toString(), source.toString()).inheritIO().start();
        Assumptions.assumeTrue(gcc.waitFor() == 0, "gcc could not build the C twin");

        double[] javaWall = new double[ROUNDS], javaCpu = new double[ROUNDS];
        double[] cWall = new double[ROUNDS], cCpu = new double[ROUNDS];
        try (Kvm kvm = Kvm.open(); Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, GUEST);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            exits(vcpu, 20_000); // JIT warm-up
            // Short alternating rounds, medians: the host is shared and noisy. Thread CPU time is
            // less disturbed by other processes than wall time.
            for (int round = 0; round < ROUNDS; round++) {
                long t0 = System.nanoTime();
                long c0 = threadCpuNanos();
                exits(vcpu, EXITS);
                javaCpu[round] = (double) (threadCpuNanos() - c0) / EXITS;
                javaWall[round] = (double) (System.nanoTime() - t0) / EXITS;
                Process p = new ProcessBuilder(binary.toString(), Integer.toString(EXITS), "1").start();
                String[] out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim().split(" ");
                assertThat(p.waitFor()).isZero();
                cWall[round] = Double.parseDouble(out[0]);
                cCpu[round] = Double.parseDouble(out[1]);
            }
        }
        String report = String.format("I/O exit round trip, median of %d rounds of %d exits: wall Java %.0f ns, "
                + "C %.0f ns (Java/C %.3f); thread CPU Java %.0f ns, C %.0f ns (Java/C %.3f)", ROUNDS, EXITS,
                median(javaWall), median(cWall), median(javaWall) / median(cWall),
                median(javaCpu), median(cCpu), median(javaCpu) / median(cCpu));
        LOG.log(System.Logger.Level.INFO, report);
    }

    private static final MethodHandle CLOCK_GETTIME = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("clock_gettime").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    private static final int CLOCK_THREAD_CPUTIME_ID = 3;

    /** This thread's CPU time, as the C twin measures it (java.management is not readable from here). */
    private static long threadCpuNanos() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ts = arena.allocate(16, 8);
            int r = (int) CLOCK_GETTIME.invokeExact(CLOCK_THREAD_CPUTIME_ID, ts);
            assertThat(r).isZero();
            return ts.get(ValueLayout.JAVA_LONG, 0) * 1_000_000_000L + ts.get(ValueLayout.JAVA_LONG, 8);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        return v[v.length / 2];
    }

    private static void exits(Vcpu vcpu, int exits) {
        long sum = 0;
        for (int i = 0; i < exits; i++) {
            if (vcpu.run() instanceof VcpuExit.Io io && io.port() == 0x3f8) {
                sum += io.value();
            } else {
                throw new AssertionError("unexpected exit");
            }
        }
        assertThat(sum).isNotNegative();
    }
}
