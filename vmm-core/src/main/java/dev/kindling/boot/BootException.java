package dev.kindling.boot;

/**
 * A kernel image, initrd, command line or machine size that cannot be booted: an unknown or truncated
 * image, an unsupported boot protocol, a segment outside RAM or over the boot structures, or a kernel and
 * initrd that do not fit. The loaders and boot configurators detect these before they write anything
 * into guest memory.
 */
public class BootException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BootException(String message) {
        super(message);
    }

    public BootException(String message, Throwable cause) {
        super(message, cause);
    }
}
