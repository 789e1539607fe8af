package dev.kindling.kvm;

/** One model-specific register and its value, {@code struct kvm_msr_entry}. */
public record Msr(int index, long value) {
    @Override
    public String toString() {
        return "Msr[0x" + Integer.toHexString(index) + "=0x" + Long.toHexString(value) + "]";
    }
}
