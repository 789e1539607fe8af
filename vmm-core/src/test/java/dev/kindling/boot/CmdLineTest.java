package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class CmdLineTest {
    @Test
    void appendsWithSingleSpaces() {
        CmdLine c = CmdLine.of("console=ttyS0 reboot=k").append("  panic=-1 ").insert("root", "/dev/vda");
        assertThat(c.toString()).isEqualTo("console=ttyS0 reboot=k panic=-1 root=/dev/vda");
        assertThat(c.length()).isEqualTo(c.toString().length());
        assertThat(c.capacity()).isEqualTo(MicrovmLayout.CMDLINE_MAX_SIZE);
    }

    @Test
    void virtioMmioDevice() {
        CmdLine c = new CmdLine().appendVirtioMmioDevice(0xd0000000L, 5).appendVirtioMmioDevice(0xd0000200L, 6);
        assertThat(c.toString()).isEqualTo("virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0000200:6");
    }

    @Test
    void bytesAreNulTerminated() {
        byte[] b = CmdLine.of("a=b").toBytesWithNul();
        assertThat(b).containsExactly('a', '=', 'b', 0);
        assertThat(new CmdLine().toBytesWithNul()).containsExactly(0);
    }

    @Test
    void rejectsNulAndControlCharacters() {
        CmdLine c = CmdLine.of("quiet");
        assertThatThrownBy(() -> c.append("a\0b")).isInstanceOf(BootException.class).hasMessageContaining("NUL");
        assertThatThrownBy(() -> c.append("a\nb")).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> c.append("caf\u00e9")).isInstanceOf(BootException.class);
        assertThat(c.toString()).isEqualTo("quiet");
    }

    @Test
    void rejectsOverLength() {
        CmdLine c = new CmdLine(10); // 9 characters and the NUL
        c.append("12345");
        assertThatThrownBy(() -> c.append("7890")).isInstanceOf(BootException.class).hasMessageContaining("at most 9");
        assertThat(c.toString()).isEqualTo("12345");
        c.append("789");
        assertThat(c.toString()).isEqualTo("12345 789");
        assertThatThrownBy(() -> c.append("x")).isInstanceOf(BootException.class);
    }

    @Test
    void rejectsBadKeysAndValues() {
        CmdLine c = new CmdLine();
        assertThatThrownBy(() -> c.insert("a b", "c")).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> c.insert("a=b", "c")).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> c.insert("", "c")).isInstanceOf(BootException.class);
        assertThatThrownBy(() -> c.insert("a", "b c")).isInstanceOf(BootException.class);
        assertThat(c.isEmpty()).isTrue();
    }
}
