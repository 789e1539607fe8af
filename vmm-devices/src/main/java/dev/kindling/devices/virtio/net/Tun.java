package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import dev.kindling.sys.Ioctl;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.nio.charset.StandardCharsets;

/**
 * The tun/tap ABI of {@code <linux/if_tun.h>} and {@code <net/if.h>} that {@link TapBackend} uses,
 * and the one check of a tap's name. Only {@link #checkName} is public.
 */
public final class Tun {
    static final String DEVICE = "/dev/net/tun";
    /** {@code IFNAMSIZ}: an interface name and its NUL. */
    static final int IFNAMSIZ = 16;
    /** {@code struct ifreq}: the name, then a union whose {@code ifr_flags} member TUNSETIFF reads. */
    static final StructLayout IFREQ = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(IFNAMSIZ, JAVA_BYTE).withName("ifr_name"),
            JAVA_SHORT.withName("ifr_flags"),
            MemoryLayout.paddingLayout(22));
    static final long IFR_FLAGS = IFREQ.byteOffset(MemoryLayout.PathElement.groupElement("ifr_flags"));

    static final short IFF_TAP = 0x0002, IFF_NO_PI = 0x1000, IFF_VNET_HDR = 0x4000;
    static final int TUN_F_CSUM = 0x01, TUN_F_TSO4 = 0x02, TUN_F_TSO6 = 0x04, TUN_F_TSO_ECN = 0x08;

    private static final int TYPE = 'T';
    static final Ioctl TUNSETIFF = Ioctl.iow("TUNSETIFF", TYPE, 202, 4);
    static final Ioctl TUNSETOFFLOAD = Ioctl.iow("TUNSETOFFLOAD", TYPE, 208, 4);
    static final Ioctl TUNSETVNETHDRSZ = Ioctl.iow("TUNSETVNETHDRSZ", TYPE, 216, 4);

    private Tun() {}

    /**
     * Throws IllegalArgumentException unless {@code name} is an interface name Linux takes (its
     * {@code dev_valid_name()}): 1 to {@code IFNAMSIZ - 1} bytes, no '/', ':', white space or NUL,
     * and not "." or "..".
     */
    public static void checkName(String name) {
        if (name.isEmpty() || name.getBytes(StandardCharsets.UTF_8).length >= IFNAMSIZ || name.equals(".")
                || name.equals("..")
                || name.chars().anyMatch(c -> c == '/' || c == ':' || c == 0 || Character.isWhitespace(c))) {
            throw new IllegalArgumentException("'" + name + "' is not a tap device name (1 to " + (IFNAMSIZ - 1)
                    + " bytes, no '/', ':' or white space)");
        }
    }
}
