package dev.kindling.devices.virtio.net;

import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Locale;
import java.util.random.RandomGenerator;

/** An Ethernet MAC address: the low 48 bits of {@code value}, the first octet highest. */
public record MacAddress(long value) {
    public MacAddress {
        if ((value >>> 48) != 0) {
            throw new IllegalArgumentException("MAC address 0x" + Long.toHexString(value) + " has more than 48 bits");
        }
    }

    /** Parses {@code 02:00:00:00:00:01} (six hex octets, colons or dashes). */
    public static MacAddress parse(String text) {
        String[] octets = text.split("[:-]", -1);
        if (octets.length != 6) {
            throw new IllegalArgumentException("MAC address '" + text + "' is not six octets like 02:00:00:00:00:01");
        }
        long v = 0;
        for (String o : octets) {
            if (o.length() != 2 || !HexFormat.isHexDigit(o.charAt(0)) || !HexFormat.isHexDigit(o.charAt(1))) {
                throw new IllegalArgumentException("MAC address '" + text + "' has octet '" + o + "', not two hex digits");
            }
            v = v << 8 | Integer.parseInt(o, 16);
        }
        return new MacAddress(v);
    }

    /** A random unicast, locally administered address (first octet {@code x2}, {@code x6}, {@code xA} or {@code xE}). */
    public static MacAddress random() {
        return random(new SecureRandom());
    }

    public static MacAddress random(RandomGenerator random) {
        long v = random.nextLong() & 0xFFFF_FFFF_FFFFL;
        v = (v & ~(0x01L << 40)) | (0x02L << 40); // unicast, locally administered
        return new MacAddress(v);
    }

    /** The six octets, first one first. */
    public byte[] bytes() {
        byte[] b = new byte[6];
        for (int i = 0; i < 6; i++) {
            b[i] = (byte) (value >>> (40 - 8 * i));
        }
        return b;
    }

    public static MacAddress of(byte[] octets) {
        if (octets.length != 6) {
            throw new IllegalArgumentException("a MAC address is 6 octets, got " + octets.length);
        }
        long v = 0;
        for (byte b : octets) {
            v = v << 8 | (b & 0xff);
        }
        return new MacAddress(v);
    }

    public boolean isMulticast() {
        return (value & (0x01L << 40)) != 0;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder(17);
        for (byte b : bytes()) {
            if (!s.isEmpty()) {
                s.append(':');
            }
            s.append(HexFormat.of().toHexDigits(b));
        }
        return s.toString().toLowerCase(Locale.ROOT);
    }
}
