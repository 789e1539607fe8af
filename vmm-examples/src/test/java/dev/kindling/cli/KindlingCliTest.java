package dev.kindling.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.kvm.testing.TestGuests;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code kindling run}: exit status and one-line reasons, through the real KVM path. */
class KindlingCliTest {
    @TempDir
    Path tmp;

    record Outcome(int status, String out, String err) {}

    private static Outcome kindling(String... args) {
        return kindlingWithInput("", args);
    }

    private static Outcome kindlingWithInput(String input, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Kindling.run(List.of(args), new ByteArrayInputStream(input.getBytes(StandardCharsets.UTF_8)),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void runBootsAnyPvhElfAndExitsZeroOnTheGuestsReset() {
        TestGuests.assumeKvm();
        Outcome o = kindling("run", "--kernel", TestGuests.elf("hello").toString(), "--mem", "16", "--print-io-map",
                "--timeout", "60");
        assertThat(o.status()).as(o.err()).isZero();
        assertThat(o.err()).contains("io-map: pio  0x03f8-0x03ff serial0 (kindling)")
                .contains("io-map: mmio 0xfee00000-0xfee00fff local-apic (kvm)");
    }

    @Test
    void runGivesTheGuestStdinAndPrintsAllItsOutputBeforeExiting() {
        TestGuests.assumeKvm();
        // the serial guest echoes, floods 12000 bytes on 'f', says bye and resets on 'q'
        Outcome o = kindlingWithInput("hi fq", "run", "--kernel", TestGuests.elf("serial").toString(), "--mem", "16",
                "--timeout", "120");
        assertThat(o.status()).as(o.err()).isZero();
        assertThat(o.out()).startsWith("ready\nhi flood 00000\n").endsWith("flood 00999\nflooded\nbye\n");
        assertThat(o.err()).isEmpty();
    }

    @Test
    void crashTimeoutAndBadInputEachEndNonZeroWithOneLine() throws Exception {
        TestGuests.assumeKvm();
        Outcome crash = kindling("run", "--kernel", TestGuests.elf("garbage").toString(), "--mem", "16");
        assertThat(crash.status()).isEqualTo(1);
        assertThat(crash.err()).isEqualTo("kindling: triple fault on vCPU 0" + System.lineSeparator());

        // the irq guest waits for interrupts nobody sends
        Outcome hang = kindling("run", "--kernel", TestGuests.elf("irq").toString(), "--mem", "16", "--timeout", "2");
        assertThat(hang.status()).isEqualTo(2);
        assertThat(hang.err()).startsWith("kindling: timeout");

        Outcome noKernel = kindling("run", "--kernel", tmp.resolve("missing").toString());
        assertThat(noKernel.status()).isEqualTo(1);
        assertThat(noKernel.err()).contains("does not exist").doesNotContain("Exception");

        assertThat(kindling("run", "--pic", "maybe", "--kernel", "x").err()).contains("--pic must be on, off or auto");
        assertThat(kindling("run", "--bogus").status()).isEqualTo(64);
        assertThat(kindling("nonsense").status()).isEqualTo(64);
    }

    @Test
    void runTakesAFirecrackerStyleJsonConfig() throws Exception {
        TestGuests.assumeKvm();
        Path json = tmp.resolve("vm.json");
        Files.writeString(json, """
                {"boot-source": {"kernel_image_path": "%s", "boot_args": "console=ttyS0"},
                 "machine-config": {"vcpu_count": 1, "mem_size_mib": 16}}""".formatted(TestGuests.elf("hello")));
        assertThat(kindling("run", "--config", json.toString(), "--timeout", "60").status()).isZero();
        Files.writeString(json, "{\"boot-source\": {\"kernel_image_path\": \"/k\", \"colour\": 1}}");
        Outcome bad = kindling("run", "--config", json.toString());
        assertThat(bad.status()).isEqualTo(1);
        assertThat(bad.err()).isEqualTo("kindling: " + json + ": unknown field 'boot-source.colour'" + System.lineSeparator());
    }

    @Test
    void runWithVsockAndSwitchedInterfacesPrintsNothingExtraAndLeavesNoSocket() throws Exception {
        TestGuests.assumeKvm();
        Path uds = tmp.resolve("v.sock");
        Outcome o = kindling("run", "--kernel", TestGuests.elf("hello").toString(), "--mem", "16", "--vsock", "3," + uds,
                "--net", "switch=lan", "--net", "switch=lan,mac=06:00:00:00:00:02", "--timeout", "60");
        assertThat(o.status()).as(o.err()).isZero();
        assertThat(o.err()).isEmpty();
        assertThat(uds).as("the vsock socket is removed with the VM").doesNotExist();

        Files.writeString(uds, "");
        Outcome taken = kindling("run", "--kernel", TestGuests.elf("hello").toString(), "--vsock", "3," + uds);
        assertThat(taken.status()).isEqualTo(1);
        assertThat(taken.err()).isEqualTo("kindling: vsock uds_path " + uds + " already exists; remove it, or choose"
                + " another path" + System.lineSeparator());
    }
}
