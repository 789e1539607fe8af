package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.Serial16550.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class Serial16550SnapshotTest {
    /** A UART with its IRQ line and console output. */
    static final class Rig implements AutoCloseable {
        final RecordingLine irq = new RecordingLine(4);
        final ByteArrayOutputStream sink = new ByteArrayOutputStream();
        final Serial16550 uart = new Serial16550("serial", irq, null, sink);

        int in(int reg) {
            return (int) uart.read(reg, 1);
        }

        void out(int reg, int v) {
            uart.write(reg, 1, v);
        }

        String output() throws InterruptedException {
            uart.drainOutput();
            synchronized (sink) {
                return sink.toString(StandardCharsets.ISO_8859_1);
            }
        }

        /** The registers that reading does not change (IIR, LSR, MSR, RBR can). */
        List<Integer> quietRegisters() {
            return List.of(in(IER), in(LCR), in(MCR), in(SCR), uart.divisor());
        }

        @Override
        public void close() {
            uart.close();
        }
    }

    private static byte[] save(Serial16550 u) {
        StateWriter w = new StateWriter();
        u.saveState(w);
        return w.toByteArray();
    }

    private static void restore(Serial16550 u, byte[] state) {
        StateReader r = new StateReader(state, "serial");
        u.restoreState(r);
        r.expectEnd();
    }

    /** 38400 baud, 16-byte FIFO (trigger 8), RX and line-status interrupts on, "hello" received, a byte sent. */
    private static Rig busy() throws InterruptedException {
        Rig rig = new Rig();
        rig.out(LCR, 0x83);
        rig.out(RBR_THR, 3);
        rig.out(IER, 0);
        rig.out(LCR, 0x03);
        rig.out(IIR_FCR, 0x81); // FIFO on, trigger 8
        rig.out(SCR, 0x5a);
        rig.out(MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
        rig.out(IER, IER_RDI | IER_RLSI);
        assertThat(rig.uart.enqueueInput("hello".getBytes(StandardCharsets.ISO_8859_1))).isTrue();
        rig.out(RBR_THR, 'X');
        assertThat(rig.output()).isEqualTo("X");
        assertThat(rig.irq.level()).isTrue();
        return rig;
    }

    @Test
    void restoredUartHasTheFifoRegistersAndInterrupt() throws InterruptedException {
        try (Rig old = busy(); Rig fresh = new Rig()) {
            byte[] state = save(old.uart);
            restore(fresh.uart, state);
            assertThat(fresh.irq.events()).containsExactly("1"); // re-raised on the new machine
            assertThat(fresh.quietRegisters()).isEqualTo(old.quietRegisters()).containsExactly(
                    IER_RDI | IER_RLSI, 0x03, MCR_DTR | MCR_RTS | MCR_OUT2, 0x5a, 3);
            assertThat(fresh.in(IIR_FCR)).isEqualTo(old.in(IIR_FCR)).isEqualTo(IIR_FIFO_ENABLED | IIR_CTI);
            assertThat(fresh.in(LSR)).isEqualTo(old.in(LSR)).isEqualTo(LSR_THRE | LSR_TEMT | LSR_DR);
            assertThat(fresh.in(MSR)).isEqualTo(old.in(MSR));
            // the same guest reads drain the same bytes and drop the line at the end
            StringBuilder a = new StringBuilder();
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < 5; i++) {
                a.append((char) old.in(RBR_THR));
                b.append((char) fresh.in(RBR_THR));
            }
            assertThat(b.toString()).isEqualTo(a.toString()).isEqualTo("hello");
            assertThat(fresh.in(LSR) & LSR_DR).isZero();
            assertThat(fresh.irq.level()).isFalse();
            // output already sent is not sent again; new output goes to the new console
            fresh.out(RBR_THR, 'Y');
            assertThat(fresh.output()).isEqualTo("Y");
            // the FIFO's depth came along: 16 bytes fit, the trigger (8) raises RDI
            fresh.uart.enqueueInput("0123456789abcdefXYZ".getBytes(StandardCharsets.ISO_8859_1));
            assertThat(fresh.in(IIR_FCR) & 0x0f).isEqualTo(IIR_RDI);
            int n = 0;
            while ((fresh.in(LSR) & LSR_DR) != 0 && n < 100) {
                fresh.in(RBR_THR);
                n++;
            }
            assertThat(n).isEqualTo(19);
        }
    }

    @Test
    void truncatedOrCorruptStateIsRefusedAndChangesNothing() throws InterruptedException {
        byte[] state;
        try (Rig old = busy()) {
            state = save(old.uart);
        }
        try (Rig fresh = new Rig()) {
            fresh.out(SCR, 0x11);
            assertThatThrownBy(() -> restore(fresh.uart, Arrays.copyOf(state, state.length - 1)))
                    .isInstanceOf(SnapshotException.class);
            byte[] tooMany = state.clone();
            tooMany[1] = 0; // FCR: FIFO off, so a one-byte receive buffer holds five
            assertThatThrownBy(() -> restore(fresh.uart, tooMany)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("FIFO");
            byte[] badLsr = state.clone();
            badLsr[5] = LSR_THRE | LSR_TEMT; // no data ready, though the FIFO holds bytes
            assertThatThrownBy(() -> restore(fresh.uart, badLsr)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("LSR");
            byte[] badMsr = state.clone();
            badMsr[6] = 0; // outside loopback CTS, DSR and DCD are set
            assertThatThrownBy(() -> restore(fresh.uart, badMsr)).isInstanceOf(SnapshotException.class)
                    .hasMessageContaining("MSR");
            assertThat(fresh.quietRegisters()).containsExactly(0, 0x03, MCR_OUT2, 0x11, 12);
            assertThat(fresh.irq.events()).isEmpty();
            fresh.out(RBR_THR, 'Z');
            assertThat(fresh.output()).isEqualTo("Z");
        }
    }
}
