package dev.kindling.devices.virtio.net;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import dev.kindling.sys.Poller;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.function.Predicate;

/** Ethernet, ARP, IPv4, ICMP and TCP frames built and read by hand, for backend tests. */
final class Frames {
    static final int ETHER_ARP = 0x0806, ETHER_IPV4 = 0x0800;
    static final long BROADCAST = 0xFFFF_FFFF_FFFFL;

    private Frames() {}

    static void putMac(ByteBuffer b, long mac) {
        b.putShort((short) (mac >>> 32)).putInt((int) mac);
    }

    static long mac(byte[] f, int offset) {
        long v = 0;
        for (int i = 0; i < 6; i++) {
            v = v << 8 | (f[offset + i] & 0xFF);
        }
        return v;
    }

    static int ipv4(String dotted) {
        String[] p = dotted.split("\\.");
        return Integer.parseInt(p[0]) << 24 | Integer.parseInt(p[1]) << 16 | Integer.parseInt(p[2]) << 8 | Integer.parseInt(p[3]);
    }

    static int u16(byte[] f, int offset) {
        return (f[offset] & 0xFF) << 8 | (f[offset + 1] & 0xFF);
    }

    static int u32(byte[] f, int offset) {
        return u16(f, offset) << 16 | u16(f, offset + 2);
    }

    /** An ARP request from {@code mac}/{@code ip} for {@code target}. */
    static byte[] arpRequest(long mac, int ip, int target) {
        ByteBuffer b = ByteBuffer.allocate(60);
        putMac(b, BROADCAST);
        putMac(b, mac);
        b.putShort((short) ETHER_ARP);
        b.putShort((short) 1).putShort((short) ETHER_IPV4).put((byte) 6).put((byte) 4).putShort((short) 1);
        putMac(b, mac);
        b.putInt(ip);
        putMac(b, 0);
        b.putInt(target);
        return b.array();
    }

    /** Whether {@code f} (from its Ethernet header on) is an ARP reply saying {@code ip} is at some MAC; returns that MAC or -1. */
    static long arpReplyFor(byte[] f, int offset, int ip) {
        if (f.length - offset < 42 || u16(f, offset + 12) != ETHER_ARP || u16(f, offset + 20) != 2
                || u32(f, offset + 28) != ip) {
            return -1;
        }
        return mac(f, offset + 22);
    }

    static int checksum(byte[] data, int offset, int length, long initial) {
        long sum = initial;
        for (int i = 0; i + 1 < length; i += 2) {
            sum += u16(data, offset + i);
        }
        if ((length & 1) != 0) {
            sum += (data[offset + length - 1] & 0xFF) << 8;
        }
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xFFFF) + (sum >>> 16);
        }
        return (int) (~sum & 0xFFFF);
    }

    /** An IPv4 packet in an Ethernet frame, header checksum filled in; the payload's own checksum is the caller's. */
    static byte[] ipv4Frame(long dstMac, long srcMac, int protocol, int src, int dst, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(14 + 20 + payload.length); // unpadded, as a guest sends it
        putMac(b, dstMac);
        putMac(b, srcMac);
        b.putShort((short) ETHER_IPV4);
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + payload.length)).putShort((short) 0x1234)
                .putShort((short) 0x4000).put((byte) 64).put((byte) protocol).putShort((short) 0).putInt(src).putInt(dst);
        b.put(payload);
        byte[] f = b.array();
        int sum = checksum(f, 14, 20, 0);
        f[24] = (byte) (sum >>> 8);
        f[25] = (byte) sum;
        return f;
    }

    /** An ICMP echo request with {@code id}, {@code seq} and {@code data}. */
    static byte[] icmpEcho(int id, int seq, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + data.length);
        b.put((byte) 8).put((byte) 0).putShort((short) 0).putShort((short) id).putShort((short) seq).put(data);
        byte[] p = b.array();
        int sum = checksum(p, 0, p.length, 0);
        p[2] = (byte) (sum >>> 8);
        p[3] = (byte) sum;
        return p;
    }

    /** A TCP SYN from {@code src}:{@code srcPort} to {@code dst}:{@code dstPort}, checksum filled in. */
    static byte[] tcpSyn(int src, int srcPort, int dst, int dstPort, int seq) {
        ByteBuffer b = ByteBuffer.allocate(24);
        b.putShort((short) srcPort).putShort((short) dstPort).putInt(seq).putInt(0)
                .putShort((short) (6 << 12 | 0x002)).putShort((short) 64240).putShort((short) 0).putShort((short) 0);
        b.put((byte) 2).put((byte) 4).putShort((short) 1460); // MSS option
        byte[] t = b.array();
        long pseudo = (src >>> 16) + (src & 0xFFFF) + (dst >>> 16) + (dst & 0xFFFF) + 6 + t.length;
        int sum = checksum(t, 0, t.length, pseudo);
        t[16] = (byte) (sum >>> 8);
        t[17] = (byte) sum;
        return t;
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] r = new byte[a.length + b.length];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    /** Sends {@code frame} through {@code b}: whether it took it. */
    static boolean send(NetBackend b, byte[] frame) {
        try (Arena a = Arena.ofConfined()) {
            return b.send(a.allocateFrom(JAVA_BYTE, frame));
        }
    }

    /** The first frame from {@code b} that {@code wanted} accepts, within 10 s; others are skipped. */
    static byte[] await(NetBackend b, Predicate<byte[]> wanted) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(VirtioNet.MAX_PACKET);
            long deadline = System.nanoTime() + 10_000_000_000L;
            for (int i = 0; i < 1000 && System.nanoTime() < deadline; i++) {
                if (!Poller.waitReadable(b.readable(), 100)) {
                    continue;
                }
                int n = b.receive(buf);
                if (n > 0) {
                    byte[] f = buf.asSlice(0, n).toArray(JAVA_BYTE);
                    if (wanted.test(f)) {
                        return f;
                    }
                }
            }
            throw new AssertionError("no wanted frame from " + b + " in 10 s");
        }
    }
}
