package dev.kindling.microvm;

import java.util.Objects;

/**
 * A configuration that cannot be built, whatever the host: names the setting ({@link #field()}) and
 * says what is wrong with it. {@link MicrovmBuilder#validate()} finds these without /dev/kvm.
 */
public final class ConfigException extends MicrovmException {
    private static final long serialVersionUID = 1L;

    private final String field;

    public ConfigException(String field, String message) {
        this(field, message, null);
    }

    public ConfigException(String field, String message, Throwable cause) {
        super(message, cause);
        this.field = Objects.requireNonNull(field, "field");
    }

    /**
     * The setting at fault, named after the builder method that sets it: {@code "kernel"},
     * {@code "initrd"}, {@code "cmdline"}, {@code "memoryMib"}, {@code "vcpus"}, {@code "pic"},
     * {@code "irq"} (two devices want one interrupt, or one the IOAPIC lacks), {@code "device"} (a
     * device's window or factory), {@code "virtioMmioTransport"}, {@code "virtioBlk"},
     * {@code "rootDevice"}, {@code "virtioConsole"}, {@code "virtioRng"}, {@code "vsock"} (the
     * builder's or a JSON file's), {@code "virtioNet"}, {@code "drives"} (a disk of a JSON file),
     * {@code "network-interfaces"} (an interface of a JSON file), {@code "config"} (the rest of a JSON
     * file), or the name given to
     * {@link OnOffAuto#parse}.
     */
    public String field() {
        return field;
    }
}
