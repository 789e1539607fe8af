package dev.kindling.devices.virtio.vsock;

import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_CREDIT_UPDATE;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RST;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_RW;
import static dev.kindling.devices.virtio.vsock.VsockHeader.OP_SHUTDOWN;

import dev.kindling.devices.virtio.vsock.VsockGuest.Packet;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.Iterator;
import java.util.function.BooleanSupplier;
import java.util.zip.CRC32;

/**
 * One guest stream socket over a {@link VsockGuest}, with the Linux driver's accounting: it sends
 * within the host's credit, counts what it received into fwd_cnt and sends CREDIT_UPDATE once it has
 * consumed a quarter of its buffer unreported (while {@link #reading}).
 */
final class GuestStream {
    final VsockGuest guest;
    final int guestPort;
    final int hostPort;
    int bufAlloc = 256 * 1024;
    int fwdCnt;
    int lastFwdSent;
    int peerBufAlloc;
    int peerFwdCnt;
    int txCnt;
    /** Whether the guest application reads: otherwise received bytes stay unconsumed (and uncredited). */
    boolean reading = true;
    /** Bytes received but not consumed, while not reading. */
    long held;
    final CRC32 crc = new CRC32();
    long received;
    final ByteArrayOutputStream kept = new ByteArrayOutputStream();
    boolean keep;
    int peerShutdown;
    boolean reset;
    /** RW packets that were larger than the credit this stream gave. */
    int overruns;

    GuestStream(VsockGuest guest, int guestPort, int hostPort) {
        this.guest = guest;
        this.guestPort = guestPort;
        this.hostPort = hostPort;
    }

    /** Takes this stream's packets from the inbox. */
    void drain() {
        guest.pump();
        for (Iterator<Packet> it = guest.inbox.iterator(); it.hasNext(); ) {
            Packet k = it.next();
            if (k.dstPort() == guestPort && k.srcPort() == hostPort) {
                it.remove();
                onPacket(k);
            }
        }
    }

    void onPacket(Packet k) {
        peerBufAlloc = k.bufAlloc();
        peerFwdCnt = k.fwdCnt();
        switch (k.op()) {
            case OP_RW -> {
                if (received + held + k.len() - Integer.toUnsignedLong(fwdCnt) > bufAlloc) {
                    overruns++;
                }
                if (reading) {
                    consume(k.payload());
                } else {
                    held += k.len();
                    if (keep) {
                        kept.writeBytes(k.payload());
                    }
                    crc.update(k.payload());
                }
            }
            case OP_SHUTDOWN -> peerShutdown |= k.flags();
            case OP_RST -> reset = true;
            default -> {}
        }
    }

    private void consume(byte[] data) {
        crc.update(data);
        if (keep) {
            kept.writeBytes(data);
        }
        received += data.length;
        fwdCnt += data.length;
        if (Integer.toUnsignedLong(fwdCnt - lastFwdSent) >= bufAlloc / 4) {
            creditUpdate();
        }
    }

    /** The guest application starts reading what it held back. */
    void resumeReading() {
        reading = true;
        received += held;
        fwdCnt += (int) held;
        held = 0;
        creditUpdate();
    }

    void creditUpdate() {
        guest.send(OP_CREDIT_UPDATE, guestPort, hostPort, 0, bufAlloc, fwdCnt, new byte[0]);
        lastFwdSent = fwdCnt;
    }

    long credit() {
        long inFlight = Integer.toUnsignedLong(txCnt - peerFwdCnt);
        return Math.max(0, Integer.toUnsignedLong(peerBufAlloc) - inFlight);
    }

    /** Sends {@code data} within the credit, waiting for more as the host reads. */
    void write(byte[] data) {
        int at = 0;
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos() * 6;
        while (at < data.length) {
            drain();
            if (reset) {
                throw new AssertionError("reset while writing");
            }
            int n = (int) Math.min(Math.min(credit(), VsockGuest.TX_PAYLOAD), data.length - at);
            if (n == 0) {
                if (System.nanoTime() > end) {
                    throw new AssertionError("no credit from the host; " + this);
                }
                VsockGuest.sleep();
                continue;
            }
            guest.send(OP_RW, guestPort, hostPort, 0, bufAlloc, fwdCnt, Arrays.copyOfRange(data, at, at + n));
            txCnt += n;
            lastFwdSent = fwdCnt;
            at += n;
        }
    }

    void shutdown(int flags) {
        guest.send(OP_SHUTDOWN, guestPort, hostPort, flags, bufAlloc, fwdCnt, new byte[0]);
    }

    /** Drains until {@code done}, failing after the guest's wait. */
    void until(BooleanSupplier done, String what) {
        long end = System.nanoTime() + VsockGuest.WAIT.toNanos() * 3;
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("not " + what + " in time; " + this);
            }
            drain();
            VsockGuest.sleep();
        }
    }

    @Override
    public String toString() {
        return "GuestStream[" + guestPort + "<->" + Integer.toUnsignedString(hostPort) + ", received " + received
                + ", held " + held + ", txCnt " + txCnt + ", credit " + credit() + ", shutdown " + peerShutdown
                + ", reset " + reset + "]";
    }
}
