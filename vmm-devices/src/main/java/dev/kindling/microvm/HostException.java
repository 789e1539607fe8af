package dev.kindling.microvm;

import dev.kindling.sys.SyscallException;

/**
 * This host cannot run a configuration that is itself valid: no /dev/kvm, no permission to open it,
 * a KVM without a capability Kindling needs, more memory or vCPUs than the host allows, or a KVM or
 * memory call that failed. The cause, when there is one, is the failed call
 * ({@link SyscallException} with its errno).
 */
public final class HostException extends MicrovmException {
    private static final long serialVersionUID = 1L;

    public HostException(String message) {
        super(message, null);
    }

    public HostException(String message, Throwable cause) {
        super(message, cause);
    }
}
