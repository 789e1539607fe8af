package dev.kindling.machine;

/** What {@link VirtualCpu#run()} returns: the vCPU was kicked, or the machine must end. */
public sealed interface VcpuEvent {
    /** Kicked by the machine (pause, stop): KVM_RUN returned without a guest event. */
    record Kicked() implements VcpuEvent {}

    /** The guest or the hypervisor ended this machine. */
    record Ended(StopReason reason) implements VcpuEvent {}

    VcpuEvent KICKED = new Kicked();
}
