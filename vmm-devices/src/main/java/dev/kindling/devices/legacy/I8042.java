package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import dev.kindling.irq.IrqLine;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.snapshot.Stateful;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Objects;

/**
 * An 8042 PS/2 controller with a minimal AT keyboard behind it and no mouse: enough for Linux's i8042
 * and atkbd drivers to probe, and for the guest to reset the machine.
 *
 * <p><b>Ports.</b> As a {@link Device} it decodes offset 0 (port 0x60: data) and offset 4 (port
 * 0x64: status on read, command on write) of a 5-byte window at 0x60, as Firecracker registers it.
 * Port 0x61 sits inside that window on a PC (the PIT's speaker port), so {@link #busRanges()} instead
 * registers two one-byte views, {@link #dataPort()} at 0x60 and {@link #commandPort()} at 0x64,
 * on the port-I/O bus. Only one-byte accesses are decoded.
 *
 * <p><b>Commands</b> (port 0x64): 0x20-0x3f read controller RAM (0x20 the command byte), 0x60-0x7f
 * write it (data follows on port 0x60), 0xa7/0xa8 disable/enable the aux port, 0xa9 aux interface
 * test (0x00), 0xaa self-test (0x55), 0xab keyboard interface test (0x00), 0xad/0xae disable/enable
 * the keyboard port, 0xd0/0xd1 read/write the output port, 0xd2/0xd3 write the keyboard/aux output
 * buffer, 0xd4 write to the aux device (no mouse: answers 0xfe with the timeout status bit), 0xdd/0xdf
 * A20 off/on, 0xf0-0xff pulse output-port lines. Pulsing line 0 (0xfe, as Linux's {@code reboot=k}
 * does) or writing an output port value with bit 0 clear asserts CPU reset: {@code resetRequest} runs,
 * on the vCPU thread, after the device's lock is released.
 *
 * <p><b>Keyboard.</b> Bytes written to port 0x60 with no command pending go to the keyboard, which
 * acknowledges with 0xfa; 0xff answers 0xfa 0xaa, 0xf2 answers 0xfa 0xab 0x83 (0x41 when the command
 * byte asks for translation), 0xee echoes, and 0xed/0xf0/0xf3 take a parameter byte. Its replies reach
 * the output buffer one at a time, while the keyboard port is enabled.
 *
 * <p><b>Interrupts.</b> IRQ 1 (keyboard) and IRQ 12 (aux) are driven as levels, like QEMU's 8042:
 * asserted while the output buffer holds a byte from that port and the command byte enables its
 * interrupt, lowered when the guest reads it, and raised again (a new edge) if another byte follows. Either line may be null. Without an IRQ 12 line,
 * Linux spends 250 ms testing the aux interrupt at boot; pass one, or boot with {@code i8042.noaux}.
 */
public final class I8042 implements Device, BusMapped, Stateful {
    /** The data port. */
    public static final long DATA_PORT = 0x60;
    /** The status (read) and command (write) port. */
    public static final long COMMAND_PORT = 0x64;
    /** The window of {@link #read}/{@link #write}: offset 0 is port 0x60, offset 4 port 0x64. */
    public static final int LENGTH = 5;
    public static final int KEYBOARD_IRQ = 1;
    public static final int AUX_IRQ = 12;

    static final int OFFSET_DATA = 0;
    static final int OFFSET_COMMAND = 4;

    // status register
    static final int STATUS_OBF = 0x01;
    static final int STATUS_SYS = 0x04;
    static final int STATUS_CMD = 0x08;
    static final int STATUS_UNLOCKED = 0x10;
    static final int STATUS_AUX_OBF = 0x20;
    static final int STATUS_TIMEOUT = 0x40;
    // command byte (controller RAM byte 0)
    static final int CTR_KBD_INT = 0x01;
    static final int CTR_AUX_INT = 0x02;
    static final int CTR_SYS = 0x04;
    static final int CTR_KBD_DISABLE = 0x10;
    static final int CTR_AUX_DISABLE = 0x20;
    static final int CTR_XLATE = 0x40;
    // output port
    static final int OUTPUT_RESET = 0x01; // active low: 0 holds the CPU in reset
    static final int OUTPUT_A20 = 0x02;

    private static final int NO_COMMAND = -1;
    private static final int KEYBOARD_QUEUE = 16;

    private final String name;
    private final Runnable resetRequest;
    private final IrqLine keyboardIrq;
    private final IrqLine auxIrq;
    private final Device dataView;
    private final Device commandView;

    // guarded by this
    private final int[] ram = new int[32];
    private int outputPort = OUTPUT_RESET | OUTPUT_A20;
    private int pendingCommand = NO_COMMAND;
    private boolean lastWriteWasCommand;
    private boolean outputFull;
    private int outputByte;
    private boolean outputAux;
    private boolean outputTimeout;
    /** The output buffer holds a byte taken from the keyboard's queue. */
    private boolean outputFromKeyboard;
    private final ArrayDeque<Integer> keyboardQueue = new ArrayDeque<>();
    private int keyboardCommand = NO_COMMAND;
    private int scancodeSet = 2;
    private boolean keyboardIrqLevel;
    private boolean auxIrqLevel;

    /** A controller named "i8042" without interrupt lines. */
    public I8042(Runnable resetRequest) {
        this("i8042", resetRequest, null, null);
    }

    /**
     * @param resetRequest run when the guest pulses the CPU reset line; must not throw
     * @param keyboardIrq IRQ 1, or null
     * @param auxIrq IRQ 12, or null
     */
    public I8042(String name, Runnable resetRequest, IrqLine keyboardIrq, IrqLine auxIrq) {
        this.name = Objects.requireNonNull(name, "name");
        this.resetRequest = Objects.requireNonNull(resetRequest, "resetRequest");
        this.keyboardIrq = keyboardIrq;
        this.auxIrq = auxIrq;
        this.ram[0] = CTR_KBD_INT | CTR_SYS | CTR_XLATE; // as the BIOS leaves it
        this.dataView = new PortView(name + "-data", OFFSET_DATA);
        this.commandView = new PortView(name + "-cmd", OFFSET_COMMAND);
    }

    @Override
    public String name() {
        return name;
    }

    /** Port 0x60 alone, as a one-byte device. */
    public Device dataPort() {
        return dataView;
    }

    /** Port 0x64 alone, as a one-byte device. */
    public Device commandPort() {
        return commandView;
    }

    @Override
    public List<BusRange> busRanges() {
        return List.of(new BusRange(DATA_PORT, 1, dataView), new BusRange(COMMAND_PORT, 1, commandView));
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return LegacyIo.unclaimed(size);
        }
        return switch ((int) offset) {
            case OFFSET_DATA -> readData();
            case OFFSET_COMMAND -> status();
            default -> LegacyIo.unclaimed(size);
        };
    }

    @Override
    public void write(long offset, int size, long value) {
        if (!LegacyIo.byteAccess(offset, size, LENGTH)) {
            return;
        }
        boolean reset;
        synchronized (this) {
            int v = (int) value & 0xff;
            reset = switch ((int) offset) {
                case OFFSET_DATA -> writeData(v);
                case OFFSET_COMMAND -> writeCommand(v);
                default -> false;
            };
        }
        if (reset) {
            resetRequest.run();
        }
    }

    /**
     * Makes the keyboard send raw bytes, as the controller passes them to the guest (scancode set 1
     * when the command byte asks for translation, the default; set 2 otherwise). Returns false, and
     * sends nothing, if the keyboard's 16-byte buffer has no room for all of them.
     */
    public synchronized boolean injectKeyboardBytes(byte... bytes) {
        if (keyboardQueue.size() + bytes.length > KEYBOARD_QUEUE) {
            return false;
        }
        for (byte b : bytes) {
            keyboardQueue.add(b & 0xff);
        }
        pumpKeyboard();
        updateIrqs();
        return true;
    }

    /** The command byte (controller RAM byte 0). */
    public synchronized int commandByte() {
        return ram[0];
    }

    /**
     * The controller RAM (command byte first), output port, pending controller and keyboard commands,
     * the output buffer and its flags, the keyboard's queued bytes and scancode set.
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        byte[] bytes = new byte[ram.length];
        for (int i = 0; i < ram.length; i++) {
            bytes[i] = (byte) ram[i];
        }
        byte[] queue = new byte[keyboardQueue.size()];
        int n = 0;
        for (int b : keyboardQueue) {
            queue[n++] = (byte) b;
        }
        out.putBytes(bytes).putByte(outputPort).putShort(pendingCommand & 0xffff).putBoolean(lastWriteWasCommand)
                .putBoolean(outputFull).putByte(outputByte).putBoolean(outputAux).putBoolean(outputTimeout)
                .putBoolean(outputFromKeyboard).putBytes(queue).putShort(keyboardCommand & 0xffff)
                .putByte(scancodeSet);
    }

    /** Checks it all first (a bad state changes nothing), then drives IRQ 1 and 12 as the state says. */
    @Override
    public synchronized void restoreState(StateReader in) {
        byte[] bytes = in.getBytes();
        int port = in.getByte();
        int command = (short) in.getShort();
        boolean wasCommand = in.getBoolean();
        boolean full = in.getBoolean();
        int data = in.getByte();
        boolean aux = in.getBoolean();
        boolean timeout = in.getBoolean();
        boolean fromKeyboard = in.getBoolean();
        byte[] queue = in.getBytes();
        int kbdCommand = (short) in.getShort();
        int set = in.getByte();
        if (bytes.length != ram.length) {
            throw in.bad(bytes.length + " bytes of controller RAM, not " + ram.length);
        }
        if (command != NO_COMMAND && !(command >= 0x60 && command <= 0x7f) && !(command >= 0xd1 && command <= 0xd4)) {
            throw in.bad("pending controller command is " + command);
        }
        if (kbdCommand != NO_COMMAND && kbdCommand != 0xed && kbdCommand != 0xf0 && kbdCommand != 0xf3) {
            throw in.bad("pending keyboard command is " + kbdCommand);
        }
        if (queue.length > KEYBOARD_QUEUE) {
            throw in.bad(queue.length + " bytes in a keyboard queue of " + KEYBOARD_QUEUE);
        }
        if (set < 1 || set > 3) {
            throw in.bad("scancode set is " + set);
        }
        if (fromKeyboard && (!full || aux)) {
            throw in.bad("a keyboard byte in an output buffer that is empty or the aux device's");
        }
        for (int i = 0; i < ram.length; i++) {
            ram[i] = bytes[i] & 0xff;
        }
        outputPort = port;
        pendingCommand = command;
        lastWriteWasCommand = wasCommand;
        outputFull = full;
        outputByte = data;
        outputAux = aux;
        outputTimeout = timeout;
        outputFromKeyboard = fromKeyboard;
        keyboardQueue.clear();
        for (byte b : queue) {
            keyboardQueue.add(b & 0xff);
        }
        keyboardCommand = kbdCommand;
        scancodeSet = set;
        updateIrqs(); // the new machine's lines start low
    }

    // ---- ports

    private int status() {
        int s = STATUS_UNLOCKED;
        if (outputFull) {
            s |= STATUS_OBF;
            if (outputAux) {
                s |= STATUS_AUX_OBF;
            }
            if (outputTimeout) {
                s |= STATUS_TIMEOUT;
            }
        }
        if ((ram[0] & CTR_SYS) != 0) {
            s |= STATUS_SYS;
        }
        if (lastWriteWasCommand) {
            s |= STATUS_CMD;
        }
        return s;
    }

    private int readData() {
        int v = outputByte; // an empty buffer reads as the last byte, as on the chip
        outputFull = false;
        outputTimeout = false;
        outputFromKeyboard = false;
        updateIrqs(); // drop the line before the next byte raises it: one edge per byte, as QEMU's ps2 does
        pumpKeyboard();
        updateIrqs();
        return v;
    }

    /** Returns true if the write asked for a CPU reset. */
    private boolean writeData(int v) {
        lastWriteWasCommand = false;
        int cmd = pendingCommand;
        pendingCommand = NO_COMMAND;
        if (cmd == NO_COMMAND) {
            // sending to the keyboard re-enables its port, as on real controllers (and QEMU)
            ram[0] &= ~CTR_KBD_DISABLE;
            keyboardReceive(v);
            pumpKeyboard();
            updateIrqs();
            return false;
        }
        if (cmd >= 0x60 && cmd <= 0x7f) {
            ram[cmd & 0x1f] = v;
            pumpKeyboard();
            updateIrqs();
            return false;
        }
        switch (cmd) {
            case 0xd1 -> {
                outputPort = v;
                return (v & OUTPUT_RESET) == 0;
            }
            case 0xd2 -> output(v, false, false);
            case 0xd3 -> output(v, true, false);
            case 0xd4 -> output(0xfe, true, true); // no aux device: the transfer times out
            default -> {}
        }
        return false;
    }

    /** Returns true if the command asked for a CPU reset. */
    private boolean writeCommand(int cmd) {
        lastWriteWasCommand = true;
        pendingCommand = NO_COMMAND;
        if (cmd >= 0x20 && cmd <= 0x3f) {
            output(ram[cmd & 0x1f], false, false);
            return false;
        }
        if ((cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4)) {
            pendingCommand = cmd;
            return false;
        }
        if (cmd >= 0xf0) {
            // pulse the output-port lines whose bit is 0 in the low nibble; line 0 is CPU reset
            return (cmd & OUTPUT_RESET) == 0;
        }
        switch (cmd) {
            case 0xa7 -> ram[0] |= CTR_AUX_DISABLE;
            case 0xa8 -> ram[0] &= ~CTR_AUX_DISABLE;
            case 0xa9, 0xab -> output(0x00, false, false);
            case 0xaa -> {
                ram[0] |= CTR_SYS;
                output(0x55, false, false);
            }
            case 0xad -> ram[0] |= CTR_KBD_DISABLE;
            case 0xae -> ram[0] &= ~CTR_KBD_DISABLE;
            case 0xd0 -> output(outputPort, false, false);
            case 0xdd -> outputPort &= ~OUTPUT_A20;
            case 0xdf -> outputPort |= OUTPUT_A20;
            default -> {} // unknown commands are ignored
        }
        pumpKeyboard();
        updateIrqs();
        return false;
    }

    /**
     * Puts a byte in the output buffer. A controller reply takes the place of an unread keyboard byte,
     * which goes back to the head of the keyboard's queue rather than being lost.
     */
    private void output(int v, boolean aux, boolean timeout) {
        if (outputFull && outputFromKeyboard) {
            keyboardQueue.addFirst(outputByte);
        }
        outputFromKeyboard = false;
        outputByte = v & 0xff;
        outputAux = aux;
        outputTimeout = timeout;
        outputFull = true;
        updateIrqs();
    }

    // ---- the keyboard

    private void keyboardReceive(int v) {
        int cmd = keyboardCommand;
        keyboardCommand = NO_COMMAND;
        if (cmd != NO_COMMAND) {
            keyboardReply(0xfa);
            if (cmd == 0xf0) {
                if (v == 0) {
                    keyboardReply(translating() ? translatedSetId(scancodeSet) : scancodeSet);
                } else if (v <= 3) {
                    scancodeSet = v;
                }
            }
            return;
        }
        switch (v) {
            case 0xed, 0xf0, 0xf3 -> {
                keyboardCommand = v;
                keyboardReply(0xfa);
            }
            case 0xee -> keyboardReply(0xee);
            case 0xf2 -> {
                keyboardReply(0xfa);
                keyboardReply(0xab);
                keyboardReply(translating() ? 0x41 : 0x83);
            }
            case 0xff -> {
                keyboardQueue.clear();
                scancodeSet = 2;
                keyboardReply(0xfa);
                keyboardReply(0xaa);
            }
            default -> keyboardReply(0xfa);
        }
    }

    private boolean translating() {
        return (ram[0] & CTR_XLATE) != 0;
    }

    private static int translatedSetId(int set) {
        return switch (set) {
            case 1 -> 0x43;
            case 3 -> 0x3f;
            default -> 0x41;
        };
    }

    private void keyboardReply(int v) {
        if (keyboardQueue.size() < KEYBOARD_QUEUE) {
            keyboardQueue.add(v);
        }
    }

    /** Moves the keyboard's next byte into the output buffer if it is free and the port enabled. */
    private void pumpKeyboard() {
        if (!outputFull && !keyboardQueue.isEmpty() && (ram[0] & CTR_KBD_DISABLE) == 0) {
            output(keyboardQueue.poll(), false, false);
            outputFromKeyboard = true;
        }
    }

    private void updateIrqs() {
        boolean kbd = outputFull && !outputAux && (ram[0] & CTR_KBD_INT) != 0;
        boolean aux = outputFull && outputAux && (ram[0] & CTR_AUX_INT) != 0;
        if (kbd != keyboardIrqLevel) {
            keyboardIrqLevel = kbd;
            if (keyboardIrq != null) {
                keyboardIrq.set(kbd);
            }
        }
        if (aux != auxIrqLevel) {
            auxIrqLevel = aux;
            if (auxIrq != null) {
                auxIrq.set(aux);
            }
        }
    }

    @Override
    public String toString() {
        return name + " (8042 at 0x60/0x64)";
    }

    /** One port of the controller as a one-byte device. */
    private final class PortView implements Device {
        private final String viewName;
        private final int offset;

        PortView(String viewName, int offset) {
            this.viewName = viewName;
            this.offset = offset;
        }

        @Override
        public String name() {
            return viewName;
        }

        @Override
        public long read(long off, int size) {
            return off == 0 ? I8042.this.read(offset, size) : LegacyIo.unclaimed(size);
        }

        @Override
        public void write(long off, int size, long value) {
            if (off == 0) {
                I8042.this.write(offset, size, value);
            }
        }
    }
}
