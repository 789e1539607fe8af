package dev.kindling.sys;

/** A failed system call: names the call, its subject and the error, e.g. {@code ioctl(KVM_RUN) failed: EINTR (4)}. */
public class SyscallException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int errno;

    public SyscallException(String call, int errno) {
        super(call + " failed: " + Errno.name(errno) + " (" + errno + ")");
        this.call = call;
        this.errno = errno;
    }

    /** The call as written in the message, e.g. {@code ioctl(KVM_CREATE_VM)}. */
    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }
}
