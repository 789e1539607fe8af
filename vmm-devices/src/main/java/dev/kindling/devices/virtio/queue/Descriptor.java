package dev.kindling.devices.virtio.queue;

/**
 * One buffer of a descriptor chain, already checked: {@code [address, address + length)} is guest RAM
 * in one region. {@code writable}: the device writes it (device-writable); otherwise it reads it.
 */
public record Descriptor(long address, int length, boolean writable) {}
