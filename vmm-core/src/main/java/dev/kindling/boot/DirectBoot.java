package dev.kindling.boot;

import dev.kindling.memory.GuestMemory;
import java.util.Optional;

/**
 * Direct kernel boot in one call, the way a machine wires it: detect the image format, check the kernel, command
 * line, initrd and MP table against guest memory, and only then load the kernel, write the boot structures and the
 * MP table. Returns the bootstrap vCPU's state; application processors start through INIT/SIPI from the guest.
 */
public final class DirectBoot {
    public enum Protocol {
        /** PVH if the kernel has a PVH note and there is no device tree, else the Linux 64-bit entry. */
        AUTO,
        /** PVH: 32-bit entry with {@code hvm_start_info}. */
        PVH,
        /** Linux 64-bit boot protocol: zero page, long mode. */
        LINUX_64
    }

    /**
     * @param kernel   what was loaded
     * @param protocol the protocol used (never AUTO)
     * @param bsp      the bootstrap vCPU's initial state
     * @param initrd   where the initrd went
     * @param mpTable  where the MP table went
     */
    public record Result(LoadedKernel kernel, Protocol protocol, BootCpuState bsp, Optional<AddressRange> initrd,
                         AddressRange mpTable) {
    }

    private DirectBoot() {
    }

    /**
     * Boots {@code kernelImage} (ELF or bzImage) with {@code cpus} vCPUs.
     *
     * @param initrd the initrd, or null for none
     */
    public static Result boot(GuestMemory memory, byte[] kernelImage, byte[] initrd, CmdLine cmdline, int cpus,
                              Protocol protocol, MpTable.Options mpOptions) {
        return boot(memory, kernelImage, initrd, null, cmdline, cpus, protocol, mpOptions);
    }

    /**
     * As {@link #boot(GuestMemory, byte[], byte[], CmdLine, int, Protocol, MpTable.Options)}, with a
     * flattened device tree ({@link X86DeviceTree}) for the kernel: only the Linux 64-bit protocol can
     * pass one ({@code setup_data}; PVH's start info has no place for it), and the MP table's IOAPIC
     * then takes the id Linux gives the tree's ({@link X86DeviceTree#LINUX_IOAPIC_ID}).
     *
     * @param deviceTree the blob, or null for none
     */
    public static Result boot(GuestMemory memory, byte[] kernelImage, byte[] initrd, byte[] deviceTree, CmdLine cmdline,
                              int cpus, Protocol protocol, MpTable.Options mpOptions) {
        KernelLoader loader = KernelLoader.forImage(kernelImage);
        LoadedKernel planned = loader.inspect(memory, kernelImage);
        Protocol chosen = protocol != Protocol.AUTO ? protocol
                : planned.kind() == LoadedKernel.Kind.ELF_PVH && deviceTree == null ? Protocol.PVH : Protocol.LINUX_64;
        long initrdSize = initrd == null ? 0 : initrd.length;
        MpTable.Options mp = mpOptions;
        if (deviceTree != null) {
            if (chosen == Protocol.PVH) {
                throw new BootException("PVH has no way to pass a device tree: boot with the Linux 64-bit protocol");
            }
            mp = mpOptions.withIoapicId(X86DeviceTree.LINUX_IOAPIC_ID);
        }
        if (chosen == Protocol.PVH) {
            PvhBoot.check(memory, planned, cmdline, initrdSize);
        } else {
            LinuxBoot.check(memory, planned, cmdline, initrdSize, deviceTree);
        }
        MpTable.check(memory, cpus, mp);

        LoadedKernel kernel = loader.load(memory, kernelImage);
        BootCpuState bsp;
        Optional<AddressRange> initrdAt;
        if (chosen == Protocol.PVH) {
            initrdAt = initrdSize == 0 ? Optional.empty() : Optional.of(PvhBoot.initrdPlacement(memory, kernel, initrdSize));
            bsp = PvhBoot.configure(memory, kernel, cmdline, initrd);
        } else {
            initrdAt = initrdSize == 0 ? Optional.empty() : Optional.of(LinuxBoot.initrdPlacement(memory, kernel, initrdSize));
            bsp = LinuxBoot.configure(memory, kernel, cmdline, initrd, deviceTree);
        }
        AddressRange mpTable = MpTable.write(memory, cpus, mp);
        return new Result(kernel, chosen, bsp, initrdAt, mpTable);
    }

    /** {@link #boot(GuestMemory, byte[], byte[], CmdLine, int, Protocol, MpTable.Options)} with AUTO and default MP options. */
    public static Result boot(GuestMemory memory, byte[] kernelImage, byte[] initrd, CmdLine cmdline, int cpus) {
        return boot(memory, kernelImage, initrd, cmdline, cpus, Protocol.AUTO, MpTable.Options.DEFAULT);
    }
}
