package dev.kindling.kvm;

/** A vCPU's multiprocessing state, {@code KVM_MP_STATE_*} (the x86 ones). */
public enum MpState {
    RUNNABLE(0),
    UNINITIALIZED(1),
    INIT_RECEIVED(2),
    HALTED(3),
    SIPI_RECEIVED(4),
    AP_RESET_HOLD(9),
    SUSPENDED(10);

    private final int value;

    MpState(int value) {
        this.value = value;
    }

    public int value() {
        return value;
    }

    public static MpState of(int value) {
        for (MpState s : values()) {
            if (s.value == value) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown KVM_MP_STATE " + value);
    }
}
