package dev.kindling.machine;

import java.util.Objects;

/** Why a machine stopped running: the guest's own end, a guest failure, or the host's request. */
public sealed interface StopReason {
    /** One line for logs and the command line. */
    String describe();

    /** What asked for a reset. */
    enum ResetCause {
        /**
         * The guest pulsed the CPU reset line of the 8042 keyboard controller (0xFE to port 0x64, as
         * Linux's {@code reboot=k} does).
         */
        I8042("i8042 reset line"),
        /** KVM reported a reset system event (a reset the in-kernel platform handled). */
        KVM_SYSTEM_EVENT("KVM system event"),
        /** A device model of the host program's asked for it through {@link Machine#requestExit}. */
        DEVICE("device");

        private final String text;

        ResetCause(String text) {
            this.text = text;
        }

        @Override
        public String toString() {
            return text;
        }
    }

    /** What powered the guest off. */
    enum PowerOffCause {
        /** KVM reported a shutdown system event. */
        KVM_SYSTEM_EVENT("KVM system event"),
        /** A device model of the host program's asked for it through {@link Machine#requestExit}. */
        DEVICE("device");

        private final String text;

        PowerOffCause(String text) {
            this.text = text;
        }

        @Override
        public String toString() {
            return text;
        }
    }

    /** The guest asked for a reset. */
    record Reset(ResetCause cause) implements StopReason {
        public Reset {
            Objects.requireNonNull(cause, "cause");
        }

        public String describe() {
            return "guest reset (" + cause + ")";
        }
    }

    /** The guest powered off. */
    record PowerOff(PowerOffCause cause) implements StopReason {
        public PowerOff {
            Objects.requireNonNull(cause, "cause");
        }

        public String describe() {
            return "guest powered off (" + cause + ")";
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
