package dev.kindling.machine;

/** Why a machine stopped running: the guest's own end, a guest failure, or the host's request. */
public sealed interface StopReason {
    /** One line for logs and the command line. */
    String describe();

    /** The guest asked for a reset (i8042 0xFE, a reset system event). */
    record Reset(String how) implements StopReason {
        public String describe() {
            return "guest reset (" + how + ")";
        }
    }

    /** The guest powered off. */
    record PowerOff(String how) implements StopReason {
        public String describe() {
            return "guest powered off (" + how + ")";
        }
    }

    /** A triple fault: the CPU shut down. */
    record TripleFault(int vcpu) implements StopReason {
        public String describe() {
            return "triple fault on vCPU " + vcpu;
        }
    }

    /** The hypervisor could not run the guest (emulation failure, failed entry, ...). */
    record InternalError(int vcpu, String detail) implements StopReason {
        public String describe() {
            return "internal error on vCPU " + vcpu + ": " + detail;
        }
    }

    /** The guest touched guest-physical memory with neither RAM nor a device, on a strict machine. */
    record BadAccess(int vcpu, long address, boolean write) implements StopReason {
        public String describe() {
            return String.format("vCPU %d %s unmapped guest-physical address 0x%x", vcpu, write ? "wrote" : "read", address);
        }
    }

    /** The VMM itself failed (a bug, or the host refused a call). */
    record HostError(int vcpu, Throwable cause) implements StopReason {
        public String describe() {
            return "host error on vCPU " + vcpu + ": " + cause;
        }
    }

    /** The host program stopped the machine. */
    record Stopped() implements StopReason {
        public String describe() {
            return "stopped by the host";
        }
    }

    /** True for the guest's own orderly end (reset or power-off). */
    default boolean isClean() {
        return this instanceof Reset || this instanceof PowerOff;
    }
}
