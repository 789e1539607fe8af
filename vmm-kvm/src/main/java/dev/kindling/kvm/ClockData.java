package dev.kindling.kvm;

/**
 * The VM's kvmclock, {@code struct kvm_clock_data}: {@code clock} in nanoseconds; {@code flags} says
 * which of {@code realtime} and {@code hostTsc} are valid ({@link KvmConstants#CLOCK_REALTIME},
 * {@link KvmConstants#CLOCK_HOST_TSC}) and whether the clock is {@link KvmConstants#CLOCK_TSC_STABLE}.
 */
public record ClockData(long clock, int flags, long realtime, long hostTsc) {
    /** Just a clock value, as passed to KVM_SET_CLOCK to set the guest's time. */
    public static ClockData of(long clockNanos) {
        return new ClockData(clockNanos, 0, 0, 0);
    }
}
