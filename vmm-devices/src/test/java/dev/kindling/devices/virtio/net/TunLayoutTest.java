package dev.kindling.devices.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.testing.CProbe;
import dev.kindling.testing.Require;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** {@link Tun}'s struct ifreq, flags and ioctl numbers against the machine's headers. */
class TunLayoutTest {
    @Test
    void matchesTheCHeaders() throws Exception {
        Require.that(Require.onPath("gcc"), "gcc is not installed: needed for the header check");
        Map<String, Long> expected = new LinkedHashMap<>();
        expected.put("sizeof_ifreq", Tun.IFREQ.byteSize());
        expected.put("offsetof_ifr_flags", Tun.IFR_FLAGS);
        expected.put("IFNAMSIZ", (long) Tun.IFNAMSIZ);
        expected.put("IFF_TAP", (long) Tun.IFF_TAP);
        expected.put("IFF_NO_PI", (long) Tun.IFF_NO_PI);
        expected.put("IFF_VNET_HDR", (long) Tun.IFF_VNET_HDR);
        expected.put("TUN_F_CSUM", (long) Tun.TUN_F_CSUM);
        expected.put("TUN_F_TSO4", (long) Tun.TUN_F_TSO4);
        expected.put("TUN_F_TSO6", (long) Tun.TUN_F_TSO6);
        expected.put("TUN_F_TSO_ECN", (long) Tun.TUN_F_TSO_ECN);
        expected.put("TUNSETIFF", Tun.TUNSETIFF.number());
        expected.put("TUNSETOFFLOAD", Tun.TUNSETOFFLOAD.number());
        expected.put("TUNSETVNETHDRSZ", Tun.TUNSETVNETHDRSZ.number());
        StringBuilder c = new StringBuilder("""
                #include <stddef.h>
                #include <stdio.h>
                #include <net/if.h>
                #include <sys/ioctl.h>
                #include <linux/if_tun.h>
                int main(void) {
                    printf("sizeof_ifreq %zu\\n", sizeof(struct ifreq));
                    printf("offsetof_ifr_flags %zu\\n", offsetof(struct ifreq, ifr_flags));
                """);
        expected.keySet().stream().skip(2).forEach(name ->
                c.append("    printf(\"%s %ld\\n\", \"").append(name).append("\", (long) (").append(name).append("));\n"));
        c.append("    return 0;\n}\n");
        Map<String, Long> actual = new TreeMap<>();
        CProbe.printed(Path.of("target", "tun-header-check"), "tun_layout", c)
                .forEach((name, value) -> actual.put(name, Long.parseLong(value)));
        assertThat(actual).isEqualTo(new TreeMap<>(expected));
    }
}
