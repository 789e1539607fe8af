package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling bench net}: its arguments, what it gives the guest, passt and QEMU, and how it reads the results. */
class NetBenchTest {
    @TempDir
    Path tmp;

    private static int kindling(ByteArrayOutputStream err, String... args) {
        return Kindling.run(List.of(args), new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void badArgumentsAreUsageErrorsBeforeAnythingIsInstalledOrRun() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertThat(kindling(err, "bench", "net", "--runs", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --runs must be at least 1")
                .contains("kindling bench net [--runs N] [--kib N]");
        err.reset();
        assertThat(kindling(err, "bench", "net", "--kib", "0")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --kib must be between 1 and 1048576");
        err.reset();
        assertThat(kindling(err, "bench", "net", "--kib", "many")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: --kib takes a whole number, got 'many'");
        err.reset();
        assertThat(kindling(err, "bench", "net", "--mib", "1")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: unknown option --mib");
        err.reset();
        assertThat(kindling(err, "bench", "net", "fast")).isEqualTo(64);
        assertThat(err.toString(StandardCharsets.UTF_8)).startsWith("kindling: bench net takes no arguments besides its options");
        assertThat(NetBench.options(List.of())).isEqualTo(new NetBench.Options(3, 256));
        assertThat(NetBench.options(List.of("--runs=2", "--kib", "64")).bytes()).isEqualTo(64 << 10);
    }

    @Test
    void initramfsHoldsDevConsoleProcAndTheProgramAsInit() throws Exception {
        Path cpio = tmp.resolve("initramfs.cpio");
        byte[] program = "\u007fELF and then some".getBytes(StandardCharsets.ISO_8859_1);
        NetBench.writeInitramfs(cpio, program);
        List<BlkBenchTest.Entry> e = BlkBenchTest.readNewc(Files.readAllBytes(cpio));
        assertThat(e).extracting(BlkBenchTest.Entry::name).containsExactly("dev", "dev/console", "proc", "init", "TRAILER!!!");
        assertThat(e.get(1).mode()).isEqualTo(0020600);
        assertThat(e.get(2).mode()).isEqualTo(0040755);
        assertThat(e.get(3).mode()).isEqualTo(0100755);
        assertThat(e.get(3).data()).isEqualTo(program);
    }

    @Test
    void guestAndReceiversGetTheSameRoundsAndOnlyAddressesOfTheNamespaceOrTheLoopback() {
        int[] ports = {40001, 40002};
        String cmdline = NetBench.guestCmdline("console=ttyS0 reboot=k", 4096, ports);
        assertThat(cmdline).startsWith("console=ttyS0 reboot=k quiet tsc=reliable ng.wait=")
                .contains(" ng.if=52:54:00:6e:00:01,10.0.1.2/24 ng.if=52:54:00:6e:00:02,10.0.2.15/24 ")
                .endsWith(" ng.job=send,10.0.1.1:5101,4096,tap-1 ng.job=send,10.0.2.2:40001,4096,passt-1"
                        + " ng.job=send,10.0.1.1:5102,4096,tap-2 ng.job=send,10.0.2.2:40002,4096,passt-2");
        assertThat(NetBench.sinkJobs("tap", 4096, ports)).containsExactly("ng.wait=" + NetBench.JOB_SECONDS,
                "ng.job=sink,10.0.1.1:5101,4096,tap-1", "ng.job=sink,10.0.1.1:5102,4096,tap-2");
        assertThat(NetBench.sinkJobs("passt", 4096, ports)).containsExactly("ng.wait=" + NetBench.JOB_SECONDS,
                "ng.job=sink,127.0.0.1:40001,4096,passt-1", "ng.job=sink,127.0.0.1:40002,4096,passt-2");
    }

    @Test
    void passtOffersNoDnsAndQemuUsesTheSameBackends() {
        Path sock = tmp.resolve("passt.sock");
        List<String> passt = NetBench.passtCommand(Path.of("/usr/bin/passt"), sock, true, true);
        assertThat(passt).startsWith("/usr/bin/passt", "--foreground", "--one-off", "--socket", sock.toString())
                .containsSequence("--runas", "nobody").containsSequence("-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2")
                .containsSequence("--dns", "none", "--no-dhcp-dns", "--no-dhcp-search").doesNotContain("-i");
        assertThat(NetBench.passtCommand(Path.of("passt"), sock, false, false)).doesNotContain("--runas")
                .containsSequence("-4", "-i", "lo");

        NetBench.Setup s = new NetBench.Setup(Path.of("/usr/sbin/ip"), Path.of("passt"), Path.of("netguest"), "kdns-x", tmp, 4096);
        Workspace.GuestKernel k = new Workspace.GuestKernel(tmp, tmp.resolve("vmlinux"), tmp.resolve("bzImage"),
                tmp.resolve("initramfs.cpio"), "console=ttyS0");
        List<String> q = NetBench.qemuCommand(s, Path.of("/usr/bin/qemu-system-x86_64"), k, tmp.resolve("i.cpio"), "CMD",
                "kdtapq", sock);
        assertThat(q).startsWith("/usr/sbin/ip", "netns", "exec", "kdns-x", "/usr/bin/qemu-system-x86_64")
                .containsSequence("-M", "microvm,acpi=off").containsSequence("-append", "CMD")
                .containsSequence("-netdev", "tap,id=t,ifname=kdtapq,script=no,downscript=no,vhost=off",
                        "-device", "virtio-net-device,netdev=t,mac=52:54:00:6e:00:01")
                .containsSequence("-netdev", "stream,id=p,server=off,addr.type=unix,addr.path=" + sock,
                        "-device", "virtio-net-device,netdev=p,mac=52:54:00:6e:00:02");
    }

    @Test
    void guestLinesBecomeRatesAndAFailureInTheGuestIsNamed() {
        String console = """
                [    9.1] random kernel line
                NETGUEST-OK tap-1 send 1048576 b76e959422182325 2000000000
                NETGUEST-OK passt-1 send 1048576 b76e959422182325 1000000000
                NETGUEST-OK tap-2 send 1048576 b76e959422182325 4000000000
                NETGUEST-OK passt-2 send 1048576 b76e959422182325 500000000
                NETGUEST-DONE 0
                """;
        NetBench.Figures f = NetBench.parse(NetBench.results("test", console));
        assertThat(f.median(0)).as("tap KiB/s").isEqualTo((512.0 + 256.0) / 2);
        assertThat(f.median(1)).as("passt KiB/s").isEqualTo((1024.0 + 2048.0) / 2);
        assertThatThrownBy(() -> NetBench.results("QEMU", "NETGUEST-ERROR tap-1 connect: Connection refused\nNETGUEST-DONE 1\n"))
                .hasMessage("QEMU: NETGUEST-ERROR tap-1 connect: Connection refused");
        assertThatThrownBy(() -> NetBench.results("Kindling", "NETGUEST-OK tap-1 send 1 0 1\nNETGUEST-DONE 1\n"))
                .hasMessageStartingWith("Kindling: the guest program did not finish");
        assertThatThrownBy(() -> NetBench.parse(List.of("NETGUEST-OK tap-1 send 1 0000000000000000 1")))
                .hasMessage("no results in the guest's output");
        assertThatThrownBy(() -> NetBench.parse(List.of("NETGUEST-OK vsock-1 send 1 0000000000000000 1")))
                .hasMessage("unexpected result line 'NETGUEST-OK vsock-1 send 1 0000000000000000 1'");
    }
}
