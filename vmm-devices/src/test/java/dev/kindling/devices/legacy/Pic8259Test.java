package dev.kindling.devices.legacy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.bus.Bus;
import dev.kindling.bus.BusRange;
import dev.kindling.irq.IrqLine;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class Pic8259Test {
    private final List<Boolean> intr = new ArrayList<>();
    private final Pic8259 pic = new Pic8259(intr::add);
    private final Bus pio = new Bus("pio");

    @BeforeEach
    void wire() {
        for (BusRange r : pic.busRanges()) {
            pio.register(r.base(), r.length(), r.device());
        }
    }

    private void out(int port, int v) {
        pio.write(port, 1, v);
    }

    private int in(int port) {
        return (int) pio.read(port, 1);
    }

    /** init_8259A() from Linux's arch/x86/kernel/i8259.c, without auto-EOI. */
    private void linuxInit() {
        out(0x21, 0xff); // mask all
        out(0xa1, 0xff);
        out(0x20, 0x11); // ICW1: edge, cascade, ICW4
        out(0x21, 0x30); // ICW2: vectors 0x30-0x37
        out(0x21, 0x04); // ICW3: slave on IR2
        out(0x21, 0x01); // ICW4: 8086 mode, normal EOI
        out(0xa0, 0x11);
        out(0xa1, 0x38); // vectors 0x38-0x3f
        out(0xa1, 0x02); // cascade identity
        out(0xa1, 0x01);
        out(0x21, 0xfb); // everything masked but the cascade
        out(0xa1, 0xff);
    }

    private void unmask(int irq) {
        if (irq < 8) {
            out(0x21, in(0x21) & ~(1 << irq));
        } else {
            out(0xa1, in(0xa1) & ~(1 << (irq - 8)));
        }
    }

    private void eoiMaster() {
        out(0x20, 0x20);
    }

    private void eoiSlave() {
        out(0xa0, 0x20);
    }

    private int isr(int cmdPort) {
        out(cmdPort, 0x0b);
        return in(cmdPort);
    }

    private int irr(int cmdPort) {
        out(cmdPort, 0x0a);
        return in(cmdPort);
    }

    @Test
    void linuxInitRaiseAcknowledgeEoi() {
        linuxInit();
        assertThat(in(0x21)).isEqualTo(0xfb);
        assertThat(in(0xa1)).isEqualTo(0xff);
        unmask(1);
        pic.raise(1, true);
        assertThat(pic.interruptRequested()).isTrue();
        assertThat(intr).containsExactly(true);
        assertThat(irr(0x20)).isEqualTo(0x02);
        assertThat(pic.acknowledge()).isEqualTo(0x31);
        assertThat(pic.interruptRequested()).isFalse();
        assertThat(isr(0x20)).isEqualTo(0x02);
        assertThat(irr(0x20)).isZero(); // edge: the request was consumed
        pic.raise(1, false);
        eoiMaster();
        assertThat(isr(0x20)).isZero();
        assertThat(intr).containsExactly(true, false);
    }

    @Test
    void maskedRequestWaitsForUnmask() {
        linuxInit();
        pic.raise(3, true);
        assertThat(pic.interruptRequested()).isFalse();
        assertThat(irr(0x20) & 0x08).isEqualTo(0x08); // latched in IRR even while masked
        unmask(3);
        assertThat(pic.interruptRequested()).isTrue();
        assertThat(pic.acknowledge()).isEqualTo(0x33);
    }

    @Test
    void priorityAndNesting() {
        linuxInit();
        unmask(1);
        unmask(3);
        unmask(5);
        pic.raise(5, true);
        pic.raise(3, true);
        assertThat(pic.acknowledge()).isEqualTo(0x33);
        assertThat(pic.interruptRequested()).isFalse(); // 5 is below 3, which is in service
        pic.raise(1, true);
        assertThat(pic.interruptRequested()).isTrue(); // 1 is above 3
        assertThat(pic.acknowledge()).isEqualTo(0x31);
        assertThat(isr(0x20)).isEqualTo(0x0a);
        eoiMaster(); // non-specific: the highest in service, 1
        assertThat(isr(0x20)).isEqualTo(0x08);
        assertThat(pic.interruptRequested()).isFalse();
        out(0x20, 0x63); // specific EOI for 3
        assertThat(isr(0x20)).isZero();
        assertThat(pic.acknowledge()).isEqualTo(0x35);
    }

    @Test
    void edgeTriggeredNeedsANewEdge() {
        linuxInit();
        unmask(4);
        pic.raise(4, true);
        assertThat(pic.acknowledge()).isEqualTo(0x34);
        eoiMaster();
        pic.raise(4, true); // still high: no new edge
        assertThat(pic.interruptRequested()).isFalse();
        pic.raise(4, false);
        pic.line(4).pulse();
        assertThat(pic.interruptRequested()).isTrue();
    }

    @Test
    void cascadeFromTheSlave() {
        linuxInit();
        unmask(10);
        pic.line(10).set(true);
        assertThat(pic.interruptRequested()).isTrue();
        assertThat(pic.acknowledge()).isEqualTo(0x3a);
        assertThat(isr(0x20)).isEqualTo(0x04);
        assertThat(isr(0xa0)).isEqualTo(0x04);
        assertThat(pic.interruptRequested()).isFalse();
        pic.line(10).set(false);
        eoiSlave();
        eoiMaster();
        assertThat(isr(0x20)).isZero();
        assertThat(isr(0xa0)).isZero();
        // a second slave interrupt after EOI gets through again
        pic.line(10).pulse();
        assertThat(pic.acknowledge()).isEqualTo(0x3a);
    }

    @Test
    void slaveRequestsAreOrderedBehindMasterPriority() {
        linuxInit();
        unmask(1);
        unmask(12);
        pic.raise(12, true);
        pic.raise(1, true);
        assertThat(pic.acknowledge()).isEqualTo(0x31); // 1 beats the cascade on 2
        eoiMaster();
        assertThat(pic.acknowledge()).isEqualTo(0x3c);
    }

    @Test
    void levelTriggeredThroughElcrRetriggersUntilLowered() {
        linuxInit();
        out(0x4d1, 0x04); // IRQ 10 level-triggered
        assertThat(in(0x4d1)).isEqualTo(0x04);
        unmask(10);
        pic.raise(10, true);
        assertThat(pic.acknowledge()).isEqualTo(0x3a);
        assertThat(irr(0xa0) & 0x04).isEqualTo(0x04); // level request stays
        eoiSlave();
        eoiMaster();
        assertThat(pic.interruptRequested()).isTrue(); // still asserted: fires again
        assertThat(pic.acknowledge()).isEqualTo(0x3a);
        pic.raise(10, false);
        eoiSlave();
        eoiMaster();
        assertThat(pic.interruptRequested()).isFalse();
        assertThat(irr(0xa0)).isZero();
    }

    @Test
    void levelTriggeredForAllPinsWithIcw1() {
        out(0x20, 0x19); // ICW1 with LTIM
        out(0x21, 0x08);
        out(0x21, 0x04);
        out(0x21, 0x01);
        out(0x21, 0x00);
        pic.raise(6, true);
        assertThat(pic.acknowledge()).isEqualTo(0x0e);
        eoiMaster();
        assertThat(pic.acknowledge()).isEqualTo(0x0e);
    }

    @Test
    void elcrCannotMakeTimerKeyboardCascadeRtcOrFpuLevel() {
        out(0x4d0, 0xff);
        out(0x4d1, 0xff);
        assertThat(in(0x4d0)).isEqualTo(0xf8);
        assertThat(in(0x4d1)).isEqualTo(0xde);
    }

    @Test
    void spuriousInterrupts() {
        linuxInit();
        assertThat(pic.acknowledge()).isEqualTo(0x37); // nothing pending: master IRQ 7
        unmask(9);
        pic.raise(9, true); // master latches the cascade edge
        out(0xa1, 0xff); // the slave request is masked away before the CPU acknowledges
        assertThat(pic.acknowledge()).isEqualTo(0x3f); // slave IRQ 7
        assertThat(isr(0xa0)).isZero();
    }

    @Test
    void autoEoi() {
        out(0x20, 0x11);
        out(0x21, 0x30);
        out(0x21, 0x04);
        out(0x21, 0x03); // auto-EOI
        out(0x21, 0x00);
        pic.raise(0, true);
        assertThat(pic.acknowledge()).isEqualTo(0x30);
        assertThat(isr(0x20)).isZero();
        pic.raise(0, false);
        pic.raise(0, true);
        assertThat(pic.acknowledge()).isEqualTo(0x30); // no EOI needed
    }

    @Test
    void pollCommand() {
        linuxInit();
        unmask(5);
        pic.raise(5, true);
        out(0x20, 0x0c); // OCW3 poll
        assertThat(in(0x20)).isEqualTo(0x85);
        assertThat(isr(0x20)).isEqualTo(0x20);
        out(0x20, 0x0c);
        assertThat(in(0x20)).isZero(); // nothing else
    }

    @Test
    void rotationOnSpecificEoi() {
        linuxInit();
        unmask(1);
        unmask(6);
        pic.raise(1, true);
        assertThat(pic.acknowledge()).isEqualTo(0x31);
        out(0x20, 0xe1); // specific EOI and rotate: IRQ 1 becomes the lowest priority
        pic.raise(1, false);
        pic.raise(1, true);
        pic.raise(6, true);
        assertThat(pic.acknowledge()).isEqualTo(0x36);
    }

    @Test
    void linesCarryTheirIrqNumberAndIrq2IsTheCascade() {
        IrqLine l = pic.line(14);
        assertThat(l.gsi()).isEqualTo(14);
        linuxInit();
        out(0x21, 0x00);
        pic.raise(2, true); // ignored: the cascade input belongs to the slave
        assertThat(pic.interruptRequested()).isFalse();
        pic.raise(16, true);
        pic.raise(-1, true);
        assertThat(pic.interruptRequested()).isFalse();
    }

    @Test
    void invalidAccessesAreIgnored() {
        linuxInit();
        assertThat(pic.master().read(0, 2)).isEqualTo(0xffff);
        assertThat(pic.master().read(2, 1)).isEqualTo(0xff);
        assertThat(pic.elcr().read(2, 1)).isEqualTo(0xff);
        pic.master().write(1, 2, 0);
        pic.master().write(1, 4, 0);
        assertThat(in(0x21)).isEqualTo(0xfb);
    }
}
