package dev.kindling.microvm;

import dev.kindling.boot.DirectBoot;
import dev.kindling.bus.BusRange;
import dev.kindling.devices.legacy.Serial16550;
import dev.kindling.machine.Machine;
import dev.kindling.machine.StopReason;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * A microVM built by {@link MicrovmBuilder}: start it, wait for it to end, read its console, close it.
 * Closing frees everything it holds (threads, descriptors, mappings).
 */
public final class Microvm implements AutoCloseable {
    private final Machine machine;
    private final Console console;
    private final Serial16550 serial;
    private final List<IoMapEntry> kvmOwned;
    private final String cmdline;
    private final DirectBoot.Protocol bootProtocol;

    Microvm(Machine machine, Console console, Serial16550 serial, List<IoMapEntry> kvmOwned, String cmdline,
            DirectBoot.Protocol bootProtocol) {
        this.machine = machine;
        this.console = console;
        this.serial = serial;
        this.kvmOwned = List.copyOf(kvmOwned);
        this.cmdline = cmdline;
        this.bootProtocol = bootProtocol;
    }

    public static MicrovmBuilder builder() {
        return new MicrovmBuilder();
    }

    public void start() {
        machine.start();
    }

    public void pause() {
        machine.pause();
    }

    public void resume() {
        machine.resume();
    }

    /** Waits up to {@code timeout} for the guest to end; empty if it still runs. */
    public Optional<StopReason> awaitExit(Duration timeout) throws InterruptedException {
        return machine.awaitExit(timeout);
    }

    /** Ends the guest now and waits for its vCPUs to leave. */
    public void stop() {
        machine.stop();
    }

    /** What the guest wrote to the serial console. */
    public Console console() {
        return console;
    }

    /** Types {@code bytes} into the serial port. */
    public void sendInput(byte[] bytes) {
        if (serial == null) {
            throw new IllegalStateException("this microVM has no ISA serial port");
        }
        serial.enqueueInput(bytes);
    }

    /** Waits until every byte the guest sent to the serial port has reached the output stream. */
    public void drainConsole() throws InterruptedException {
        if (serial != null) {
            serial.drainOutput();
        }
    }

    /** The kernel command line the guest got (with the automatic entries). */
    public String cmdline() {
        return cmdline;
    }

    public DirectBoot.Protocol bootProtocol() {
        return bootProtocol;
    }

    /** Every I/O port range and MMIO range the guest can reach, by address. */
    public List<IoMapEntry> ioMap() {
        List<IoMapEntry> all = new ArrayList<>(kvmOwned);
        for (BusRange r : machine.pio().ranges()) {
            all.add(new IoMapEntry(IoMapEntry.Space.PIO, r.base(), r.length(), r.device().name(), IoMapEntry.Owner.KINDLING));
        }
        for (BusRange r : machine.mmio().ranges()) {
            all.add(new IoMapEntry(IoMapEntry.Space.MMIO, r.base(), r.length(), r.device().name(), IoMapEntry.Owner.KINDLING));
        }
        all.sort(Comparator.comparing(IoMapEntry::space).thenComparingLong(IoMapEntry::base));
        return all;
    }

    /** The machine underneath, for what this handle does not cover. */
    public Machine machine() {
        return machine;
    }

    @Override
    public void close() {
        machine.close();
    }
}
