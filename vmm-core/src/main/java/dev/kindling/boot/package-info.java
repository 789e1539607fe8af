/**
 * Direct kernel boot for x86 microVMs, independent of KVM: the {@link dev.kindling.boot.MicrovmLayout microvm
 * memory layout} and its e820 map, kernel loaders ({@link dev.kindling.boot.ElfLoader ELF with the PVH note},
 * {@link dev.kindling.boot.BzImageLoader bzImage}, {@link dev.kindling.boot.FlatBinaryLoader flat test guests}),
 * boot configurators ({@link dev.kindling.boot.PvhBoot PVH}, {@link dev.kindling.boot.LinuxBoot Linux 64-bit}),
 * the {@link dev.kindling.boot.MpTable Intel MP table}, the {@link dev.kindling.boot.CmdLine command line} and the
 * {@link dev.kindling.boot.BootCpuState initial vCPU state} for the KVM layer to apply.
 *
 * <p>A machine boots a kernel with {@link dev.kindling.boot.DirectBoot#boot}: guest memory from
 * {@link dev.kindling.boot.MicrovmLayout#ramRanges(long)}, then one call that checks everything and only then writes
 * the kernel, initrd, boot structures and MP table, returning the bootstrap vCPU's state. Errors are
 * {@link dev.kindling.boot.BootException}s.
 */
package dev.kindling.boot;
