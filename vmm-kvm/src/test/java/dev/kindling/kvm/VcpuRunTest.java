package dev.kindling.kvm;

import static dev.kindling.kvm.KvmTestSupport.bytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.bus.AddressSpace;
import dev.kindling.memory.MemoryRegion;
import dev.kindling.sys.EventFd;
import dev.kindling.sys.Libc;
import dev.kindling.sys.ThreadKick;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Runs hand-assembled real-mode guests and checks the exact exits. */
@SuppressWarnings("try") // resources such as guest RAM are held open by try-with-resources, unreferenced
class VcpuRunTest {
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
    void portAndMmioExitsInOrder() {
        byte[] code = bytes(
                0xba, 0xf8, 0x03,             // mov dx, 0x3f8
                0x00, 0xd8,                   // add al, bl
                0x04, '0',                    // add al, '0'
                0xee,                         // out dx, al
                0xc6, 0x06, 0x00, 0x80, 0x5a, // mov byte [0x8000], 0x5a   (no RAM there: MMIO write)
                0xa0, 0x00, 0x80,             // mov al, [0x8000]          (MMIO read)
                0xee,                         // out dx, al                (echoes what the read returned)
                0xa2, 0x00, 0x20,             // mov [0x2000], al          (RAM)
                0xf4);                        // hlt
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 2, 3);

            VcpuExit.Io out = (VcpuExit.Io) vcpu.run();
            assertThat(out.direction()).isEqualTo(VcpuExit.IoDirection.OUT);
            assertThat(out.port()).isEqualTo(0x3f8);
            assertThat(out.size()).isEqualTo(1);
            assertThat(out.count()).isEqualTo(1);
            assertThat(out.value()).isEqualTo('5');
            assertThat(out.data().toArray(ValueLayout.JAVA_BYTE)).containsExactly('5');

            VcpuExit.Mmio write = (VcpuExit.Mmio) vcpu.run();
            assertThat(write.isWrite()).isTrue();
            assertThat(write.address()).isEqualTo(0x8000);
            assertThat(write.len()).isEqualTo(1);
            assertThat(write.data()).isEqualTo(0x5a);
            assertThat(write.dataBytes()).containsExactly(0x5a);

            VcpuExit.Mmio read = (VcpuExit.Mmio) vcpu.run();
            assertThat(read.isWrite()).isFalse();
            assertThat(read.address()).isEqualTo(0x8000);
            assertThat(read.len()).isEqualTo(1);
            read.complete(0x21);

            VcpuExit.Io echo = (VcpuExit.Io) vcpu.run();
            assertThat(echo.port()).isEqualTo(0x3f8);
            assertThat(echo.value()).isEqualTo(0x21);

            assertThat(vcpu.run()).isEqualTo(VcpuExit.HLT);
            assertThat(ram.segment().get(ValueLayout.JAVA_BYTE, 0x2000)).isEqualTo((byte) 0x21);
            assertThat(vcpu.getRegs().rip()).isEqualTo(KvmTestSupport.CODE + code.length);
        }
    }

    @Test
    void portInIsCompletedThroughTheRunPage() {
        byte[] code = bytes(
                0xba, 0x71, 0x00,  // mov dx, 0x71
                0xec,              // in al, dx
                0x04, 0x01,        // add al, 1
                0xee,              // out dx, al
                0xf4);             // hlt
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            VcpuExit.Io in = (VcpuExit.Io) vcpu.run();
            assertThat(in.isIn()).isTrue();
            assertThat(in.port()).isEqualTo(0x71);
            in.setValue(0x41);
            assertThatThrownBy(() -> in.value(1)).isInstanceOf(IndexOutOfBoundsException.class);
            VcpuExit.Io out = (VcpuExit.Io) vcpu.run();
            assertThat(out.isOut()).isTrue();
            assertThat(out.value()).isEqualTo(0x42);
            assertThatThrownBy(() -> out.setValue(1)).isInstanceOf(IllegalStateException.class);
            assertThat(vcpu.run()).isInstanceOf(VcpuExit.Hlt.class);
        }
    }

    /** Counts forever in the word at {@link #SPIN_COUNTER}; never exits. */
    private static final byte[] SPIN = bytes(
            0xff, 0x06, 0x00, 0x20, // inc word [0x2000]
            0xeb, 0xfa);            // jmp back to the inc
    private static final long SPIN_COUNTER = 0x2000;

    /** Waits until the spinning guest's counter moves: its vCPU is then inside KVM_RUN. */
    private static void awaitGuestRunning(MemoryRegion ram) throws InterruptedException {
        short start = ram.segment().get(ValueLayout.JAVA_SHORT, SPIN_COUNTER);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (ram.segment().get(ValueLayout.JAVA_SHORT, SPIN_COUNTER) == start) {
            assertThat(System.nanoTime()).as("guest counter moved within 60 s").isLessThan(deadline);
            Thread.sleep(1);
        }
    }

    @Test
    void kickInterruptsAGuestSpinningForever() throws Exception {
        byte[] code = SPIN;
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            CountDownLatch started = new CountDownLatch(1);
            long[] kickedAt = {0};
            CompletableFuture<Long> returnedAt = CompletableFuture.supplyAsync(() -> {
                started.countDown();
                while (true) {
                    VcpuExit exit = vcpu.run();
                    // Anything else (a stray signal) just re-enters; only the kick ends the loop.
                    synchronized (kickedAt) {
                        if (exit instanceof VcpuExit.Interrupted && kickedAt[0] != 0) {
                            return System.nanoTime();
                        }
                    }
                }
            }, runnable -> new Thread(runnable, "vcpu-spin").start());
            started.await();
            awaitGuestRunning(ram);
            assertThat(returnedAt).as("run() returned while the guest spins").isNotDone();
            synchronized (kickedAt) {
                kickedAt[0] = System.nanoTime();
            }
            vcpu.kick();
            long end = returnedAt.get(60, TimeUnit.SECONDS);
            // without the kick run() never returns; the bound only keeps a loaded machine from flaking
            assertThat(Duration.ofNanos(end - kickedAt[0])).isLessThan(Duration.ofSeconds(30));
            assertThat(vcpu.immediateExit()).as("run() clears immediate_exit when it reports the kick").isFalse();
            assertThat(vcpu.getRegs().rip()).as("at one of the loop's two instructions")
                    .isIn(KvmTestSupport.CODE, KvmTestSupport.CODE + 4);
        }
    }

    @Test
    void kickBeforeRunMakesTheNextRunReturnAtOnce() {
        byte[] code = bytes(0xeb, 0xfe); // jmp $
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            vcpu.kick(); // no thread has run it yet: nothing to signal, immediate_exit carries the kick
            assertThat(vcpu.immediateExit()).isTrue();
            assertThat(vcpu.run()).isEqualTo(VcpuExit.INTERRUPTED);
            assertThat(vcpu.immediateExit()).isFalse();
        }
    }

    @Test
    void closingFromAnotherThreadKicksTheRunnerOut() throws Exception {
        byte[] code = SPIN;
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code)) {
            Vcpu vcpu = vm.createVcpu(0);
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            CountDownLatch started = new CountDownLatch(1);
            CompletableFuture<Throwable> runner = CompletableFuture.supplyAsync(() -> {
                started.countDown();
                try {
                    while (true) {
                        vcpu.run();
                    }
                } catch (IllegalStateException e) {
                    return e;
                }
            }, runnable -> new Thread(runnable, "vcpu-close").start());
            started.await();
            awaitGuestRunning(ram);
            vcpu.close();
            assertThat(runner.get(60, TimeUnit.SECONDS)).hasMessage("vcpu 0 is closed");
            assertThat(vm.vcpus()).isEmpty();
            vcpu.kick(); // harmless after close
            assertThatThrownBy(vcpu::getRegs).isInstanceOf(IllegalStateException.class).hasMessageContaining("vcpu 0");
            assertThatThrownBy(() -> vcpu.runPage().get(ValueLayout.JAVA_INT, 8)).isInstanceOf(IllegalStateException.class);
        }
    }

    @Test
    void ioeventfdSwallowsTheMatchingWriteWithoutAnExit() {
        byte[] code = bytes(
                0xba, 0x00, 0x05,  // mov dx, 0x500
                0xb0, 0x42,        // mov al, 0x42
                0xee,              // out dx, al   (registered with datamatch 0x42: no exit)
                0x42,              // inc dx
                0xee,              // out dx, al   (port 0x501: exits)
                0xf4);             // hlt
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                EventFd notify = EventFd.nonBlocking(); EventFd irq = EventFd.nonBlocking();
                EventFd level = EventFd.nonBlocking(); EventFd resample = EventFd.nonBlocking()) {
            vm.setTssAddress(0xfffb_d000L);
            vm.setIdentityMapAddress(0xfffb_c000L);
            vm.createIrqchip();
            vm.createPit2();
            vm.registerIrqfd(irq, 4);
            vm.registerIrqfd(level, resample, 5);
            vm.registerIoeventfd(notify, 0x500, 1, AddressSpace.PIO, OptionalLong.of(0x42));
            try (Vcpu vcpu = vm.createVcpu(0)) {
                KvmTestSupport.startRealMode(vcpu, 0, 0);
                VcpuExit.Io exit = (VcpuExit.Io) vcpu.run();
                assertThat(exit.port()).as("first exit is the unregistered port").isEqualTo(0x501);
                assertThat(exit.value()).isEqualTo(0x42);
                assertThat(notify.await(1000)).isTrue();
                assertThat(notify.read()).isEqualTo(1);

                // Deassigned, the same write exits again.
                vm.unregisterIoeventfd(notify, 0x500, 1, AddressSpace.PIO, OptionalLong.of(0x42));
                vcpu.setRegs(vcpu.getRegs().withRip(KvmTestSupport.CODE));
                VcpuExit.Io again = (VcpuExit.Io) vcpu.run();
                assertThat(again.port()).isEqualTo(0x500);
                assertThat(notify.read()).isZero();
            }
            vm.unregisterIrqfd(irq, 4);
            vm.unregisterIrqfd(level, 5);
        }
    }

    @Test
    void ioeventfdWithoutDatamatchOnMmio() {
        byte[] code = bytes(
                0xc6, 0x06, 0x00, 0x90, 0x07, // mov byte [0x9000], 7  (registered MMIO: no exit)
                0xc6, 0x06, 0x10, 0x90, 0x08, // mov byte [0x9010], 8  (MMIO exit)
                0xf4);
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                EventFd notify = EventFd.nonBlocking(); Vcpu vcpu = vm.createVcpu(0)) {
            vm.registerIoeventfd(notify, 0x9000, 1, AddressSpace.MMIO, OptionalLong.empty());
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            VcpuExit.Mmio exit = (VcpuExit.Mmio) vcpu.run();
            assertThat(exit.address()).isEqualTo(0x9010);
            assertThat(exit.data()).isEqualTo(8);
            assertThat(notify.read()).isEqualTo(1);
        }
    }

    @Test
    void constantKicksWhileShortLivedThreadsTakeTurnsRunning() throws Exception {
        byte[] code = bytes(0xeb, 0xfe); // jmp $
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            AtomicBoolean done = new AtomicBoolean();
            AtomicLong kicks = new AtomicLong();
            Thread kicker = new Thread(() -> {
                while (!done.get()) {
                    vcpu.kick();
                    kicks.incrementAndGet();
                    Thread.onSpinWait();
                }
            }, "kicker");
            kicker.start();
            int interrupted = 0;
            // Each runner binds itself to the vCPU and then dies: a kick must never reach a dead thread.
            for (int t = 0; t < 40; t++) {
                CompletableFuture<Integer> runner = new CompletableFuture<>();
                Thread th = new Thread(() -> {
                    int n = 0;
                    for (int i = 0; i < 5; i++) {
                        if (vcpu.run() instanceof VcpuExit.Interrupted) {
                            n++;
                        }
                    }
                    runner.complete(n);
                }, "runner-" + t);
                th.start();
                interrupted += runner.get(10, TimeUnit.SECONDS);
                th.join();
            }
            done.set(true);
            kicker.join();
            assertThat(interrupted).isEqualTo(200);
            assertThat(kicks.get()).isGreaterThan(200);
        }
    }

    @Test
    void closeGivesUpOnARunnerThatCannotTakeTheKickAndLeavesTheVcpuOpen() throws Exception {
        byte[] code = bytes(
                0xfe, 0x06, 0x01, 0x20, // loop: inc byte [0x2001]   (shows the guest runs)
                0xa0, 0x00, 0x20,       //       mov al, [0x2000]
                0x84, 0xc0,             //       test al, al
                0x74, 0xf5,             //       jz loop
                0xf4);                  //       hlt
        try (Vm vm = kvm.createVm(); MemoryRegion ram = KvmTestSupport.ramWithCode(vm, code);
                Vcpu vcpu = vm.createVcpu(0)) {
            KvmTestSupport.startRealMode(vcpu, 0, 0);
            CompletableFuture<VcpuExit> runner = new CompletableFuture<>();
            Thread t = new Thread(() -> {
                try (Arena arena = Arena.ofConfined()) {
                    vcpu.setImmediateExit(true);
                    assertThat(vcpu.run()).isEqualTo(VcpuExit.INTERRUPTED); // binds this thread to the vCPU
                    MemorySegment kick = arena.allocate(Libc.SIGSET_SIZE);
                    Libc.sigset(kick, ThreadKick.SIGNAL);
                    Libc.pthreadSigmask(Libc.SIG_BLOCK, kick, MemorySegment.NULL);
                    VcpuExit exit = vcpu.run(); // the kick stays pending: only the guest's hlt ends this
                    Libc.pthreadSigmask(Libc.SIG_UNBLOCK, kick, MemorySegment.NULL);
                    runner.complete(exit);
                } catch (Throwable e) {
                    runner.completeExceptionally(e);
                }
            }, "vcpu-deaf");
            t.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (ram.segment().get(ValueLayout.JAVA_BYTE, 0x2001) == 0 && !runner.isDone()) {
                assertThat(System.nanoTime()).as("the guest to start").isLessThan(deadline);
                Thread.sleep(1);
            }

            long t0 = System.nanoTime();
            assertThatThrownBy(() -> vcpu.close(Duration.ofMillis(200)))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("vcpu 0: its thread did not leave KVM_RUN within 200 ms")
                    .hasMessageContaining("stays open");
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
            assertThat(vcpu.fd().isOpen()).isTrue();
            assertThat(runner).isNotDone();

            ram.segment().set(ValueLayout.JAVA_BYTE, 0x2000, (byte) 1); // let the guest reach hlt
            assertThat(runner.get(10, TimeUnit.SECONDS)).isEqualTo(VcpuExit.HLT);
            t.join();
            vcpu.close();
            assertThat(vcpu.fd().isOpen()).isFalse();
            assertThatThrownBy(vcpu::run).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        }
    }
}
