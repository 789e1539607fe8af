package dev.kindling.devices.legacy;

import static dev.kindling.devices.legacy.I8042.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;

import dev.kindling.bus.BusRange;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class I8042Test {
    private final AtomicInteger resets = new AtomicInteger();
    private final RecordingLine kbdIrq = new RecordingLine(1);
    private final RecordingLine auxIrq = new RecordingLine(12);
    private final I8042 kbc = new I8042("i8042", resets::incrementAndGet, kbdIrq, auxIrq);

    private int status() {
        return (int) kbc.read(OFFSET_COMMAND, 1);
    }

    private int data() {
        return (int) kbc.read(OFFSET_DATA, 1);
    }

    private void command(int c) {
        kbc.write(OFFSET_COMMAND, 1, c);
    }

    private void data(int v) {
        kbc.write(OFFSET_DATA, 1, v);
    }

    /** What Linux's i8042_command does for a command with one reply. */
    private int commandReply(int c) {
        command(c);
        assertThat(status() & STATUS_OBF).as("reply to 0x%x", c).isEqualTo(STATUS_OBF);
        return data();
    }

    @Test
    void initialStatusAndCommandByte() {
        assertThat(status()).isEqualTo(STATUS_UNLOCKED | STATUS_SYS);
        assertThat(commandReply(0x20)).isEqualTo(CTR_KBD_INT | CTR_SYS | CTR_XLATE);
        assertThat(status() & STATUS_CMD).isEqualTo(STATUS_CMD);
        assertThat(status() & STATUS_OBF).isZero();
    }

    @Test
    void selfTestAndInterfaceTests() {
        assertThat(commandReply(0xaa)).isEqualTo(0x55);
        assertThat(commandReply(0xab)).isEqualTo(0x00);
        assertThat(commandReply(0xa9)).isEqualTo(0x00);
        assertThat(status() & STATUS_SYS).isEqualTo(STATUS_SYS);
    }

    @Test
    void writeAndReadCommandByteAndRam() {
        command(0x60);
        data(0x03);
        assertThat(kbc.commandByte()).isEqualTo(0x03);
        assertThat(commandReply(0x20)).isEqualTo(0x03);
        assertThat(status() & STATUS_SYS).isZero();
        command(0x65);
        data(0x77);
        assertThat(commandReply(0x25)).isEqualTo(0x77);
    }

    @Test
    void disableAndEnablePorts() {
        command(0xad);
        assertThat(commandReply(0x20) & CTR_KBD_DISABLE).isNotZero();
        command(0xae);
        assertThat(commandReply(0x20) & CTR_KBD_DISABLE).isZero();
        command(0xa7);
        assertThat(commandReply(0x20) & CTR_AUX_DISABLE).isNotZero();
        command(0xa8);
        assertThat(commandReply(0x20) & CTR_AUX_DISABLE).isZero();
    }

    @Test
    void outputPortAndA20() {
        assertThat(commandReply(0xd0)).isEqualTo(OUTPUT_RESET | OUTPUT_A20);
        command(0xdd);
        assertThat(commandReply(0xd0)).isEqualTo(OUTPUT_RESET);
        command(0xd1);
        data(0x03);
        assertThat(commandReply(0xd0)).isEqualTo(0x03);
        assertThat(resets).hasValue(0);
    }

    @Test
    void pulseResetLineRequestsReset() {
        command(0xff); // pulses nothing
        command(0xfd); // pulses line 1 only
        assertThat(resets).hasValue(0);
        command(0xfe);
        assertThat(resets).hasValue(1);
        command(0xd1);
        data(0x02); // output port with reset held low
        assertThat(resets).hasValue(2);
    }

    @Test
    @Timeout(60)
    void resetCallbackRunsWithoutTheDeviceLock() throws Exception {
        AtomicBoolean otherThreadGotIn = new AtomicBoolean();
        I8042[] holder = new I8042[1];
        holder[0] = new I8042(() -> {
            Thread t = new Thread(() -> holder[0].read(OFFSET_COMMAND, 1));
            t.start();
            try {
                t.join(30_000); // returns at once unless the lock is held, however loaded the machine
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            // decided here: once the callback returns, a held lock is released and the thread gets in
            otherThreadGotIn.set(!t.isAlive());
        });
        holder[0].write(OFFSET_COMMAND, 1, 0xfe);
        assertThat(otherThreadGotIn).as("another thread used the device while the reset callback ran").isTrue();
    }

    @Test
    void keyboardAnswersLinuxProbe() {
        data(0xf2); // get ID, translated
        assertThat(data()).isEqualTo(0xfa);
        assertThat(data()).isEqualTo(0xab);
        assertThat(data()).isEqualTo(0x41);
        assertThat(status() & STATUS_OBF).isZero();
        data(0xf5);
        assertThat(data()).isEqualTo(0xfa);
        data(0xed); // LEDs + parameter
        assertThat(data()).isEqualTo(0xfa);
        data(0x07);
        assertThat(data()).isEqualTo(0xfa);
        data(0xf0); // get scancode set
        assertThat(data()).isEqualTo(0xfa);
        data(0x00);
        assertThat(data()).isEqualTo(0xfa);
        assertThat(data()).isEqualTo(0x41); // set 2, translated
        data(0xee);
        assertThat(data()).isEqualTo(0xee);
        data(0xff);
        assertThat(data()).isEqualTo(0xfa);
        assertThat(data()).isEqualTo(0xaa);
        command(0x60);
        data(0x01); // translation off
        data(0xf2);
        data();
        data();
        assertThat(data()).isEqualTo(0x83);
    }

    @Test
    void keyboardIrqIsALevelWithAnEdgePerByte() {
        data(0xf2);
        assertThat(kbdIrq.level()).isTrue();
        data();
        data();
        data();
        assertThat(kbdIrq.events()).containsExactly("1", "0", "1", "0", "1", "0");
        assertThat(auxIrq.events()).isEmpty();
    }

    @Test
    void keyboardIrqRespectsTheCommandByte() {
        command(0x60);
        data(0x00); // interrupts off
        data(0xf4);
        assertThat(status() & STATUS_OBF).isEqualTo(STATUS_OBF);
        assertThat(kbdIrq.events()).isEmpty();
        command(0x60);
        data(CTR_KBD_INT); // enabling with a byte waiting raises it
        assertThat(kbdIrq.level()).isTrue();
        assertThat(data()).isEqualTo(0xfa);
        assertThat(kbdIrq.level()).isFalse();
    }

    @Test
    void disabledKeyboardPortHoldsItsBytes() {
        command(0xad);
        assertThat(kbc.injectKeyboardBytes((byte) 0x1e, (byte) 0x9e)).isTrue();
        assertThat(status() & STATUS_OBF).isZero();
        command(0xae);
        assertThat(data()).isEqualTo(0x1e);
        assertThat(data()).isEqualTo(0x9e);
        assertThat(kbc.injectKeyboardBytes(new byte[17])).isFalse();
    }

    @Test
    void controllerReplyDoesNotLoseAKeyboardByte() {
        kbc.injectKeyboardBytes((byte) 0x1c);
        assertThat(commandReply(0x20)).isEqualTo(kbc.commandByte());
        assertThat(data()).isEqualTo(0x1c);
    }

    @Test
    void auxPortWithNothingAttached() {
        command(0x60);
        data(CTR_KBD_INT | CTR_AUX_INT | CTR_SYS);
        command(0xd3); // AUX loop: the controller echoes as aux data
        data(0x5a);
        assertThat(status() & (STATUS_OBF | STATUS_AUX_OBF)).isEqualTo(STATUS_OBF | STATUS_AUX_OBF);
        assertThat(auxIrq.level()).isTrue();
        assertThat(kbdIrq.level()).isFalse();
        assertThat(data()).isEqualTo(0x5a);
        assertThat(auxIrq.level()).isFalse();
        command(0xd4); // to the mouse: times out
        data(0xf2);
        assertThat(status() & (STATUS_AUX_OBF | STATUS_TIMEOUT)).isEqualTo(STATUS_AUX_OBF | STATUS_TIMEOUT);
        assertThat(data()).isEqualTo(0xfe);
        assertThat(status() & STATUS_TIMEOUT).isZero();
        command(0xd2); // write keyboard buffer
        data(0x42);
        assertThat(status() & STATUS_AUX_OBF).isZero();
        assertThat(data()).isEqualTo(0x42);
    }

    @Test
    void invalidAccessesAreIgnored() {
        assertThat(kbc.read(1, 1)).isEqualTo(0xff);
        assertThat(kbc.read(5, 1)).isEqualTo(0xff);
        assertThat(kbc.read(OFFSET_COMMAND, 2)).isEqualTo(0xffff);
        kbc.write(OFFSET_COMMAND, 2, 0xfe);
        kbc.write(2, 1, 0xfe);
        assertThat(resets).hasValue(0);
        command(0x12); // unknown command
        assertThat(status() & STATUS_OBF).isZero();
    }

    @Test
    void portViewsForSeparateRegistration() {
        assertThat(kbc.busRanges()).extracting(BusRange::base, BusRange::length)
                .containsExactly(tuple(0x60L, 1L), tuple(0x64L, 1L));
        kbc.commandPort().write(0, 1, 0xaa);
        assertThat(kbc.commandPort().read(0, 1) & STATUS_OBF).isEqualTo(STATUS_OBF);
        assertThat(kbc.dataPort().read(0, 1)).isEqualTo(0x55);
        assertThat(kbc.dataPort().read(1, 1)).isEqualTo(0xff);
        kbc.commandPort().write(0, 1, 0xfe);
        assertThat(resets).hasValue(1);
    }
}
