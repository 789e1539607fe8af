package dev.kindling.microvm;

import dev.kindling.boot.MicrovmLayout;
import dev.kindling.boot.MpTable;
import dev.kindling.bus.AddressSpace;
import dev.kindling.device.DeviceContext;
import dev.kindling.devices.ivshmem.IvshmemClient;
import dev.kindling.devices.ivshmem.IvshmemDevice;
import dev.kindling.devices.ivshmem.IvshmemMemory;
import dev.kindling.devices.pci.Msix;
import dev.kindling.devices.pci.PciFunction;
import dev.kindling.devices.pci.PciHostBridge;
import dev.kindling.devices.pci.PciIntx;
import dev.kindling.irq.InterruptService;
import dev.kindling.irq.IrqLine;
import dev.kindling.machine.Machine;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.IntFunction;

/**
 * The PCI host bridge and the functions behind it (ivshmem devices): where the bridge's windows are,
 * what the MP table says of their interrupts, and how the machine gets them. Function {@code i} of
 * the builder sits in slot {@code i + 1}, so the MP table can be written before the functions exist.
 */
final class PciWiring {
    /** 32-bit BARs: the top of the MMIO hole below the virtio-mmio transports, as firmware would place them. */
    static final PciHostBridge.Window MMIO32 = new PciHostBridge.Window(0xc000_0000L, 0x1000_0000L);
    /** I/O BARs: where QEMU's firmware puts them, above every legacy port. */
    static final PciHostBridge.Window IO = new PciHostBridge.Window(0xc000, 0x1000);
    /** 64-bit BARs (ivshmem's shared memory): above RAM, 1 GiB aligned. */
    static final long MMIO64_ALIGN = 1L << 30, MMIO64_SIZE = 1L << 36;

    /** An ivshmem device of the builder's. */
    sealed interface Ivshmem {
        String label();
    }

    /** ivshmem-plain on memory the caller shares (and keeps). */
    record Plain(IvshmemMemory memory) implements Ivshmem {
        Plain {
            Objects.requireNonNull(memory, "memory");
        }

        public String label() {
            return "ivshmem on shared memory of " + memory.size() + " bytes";
        }
    }

    /** ivshmem-doorbell, a peer of the server at {@code socket}; interrupts by MSI-X or INTx. */
    record Server(Path socket, boolean msix) implements Ivshmem {
        Server {
            Objects.requireNonNull(socket, "socket");
        }

        public String label() {
            return "ivshmem server " + socket;
        }
    }

    private PciWiring() {}

    static PciHostBridge.Window mmio64(long ramBytes) {
        long top = Math.max(MicrovmLayout.HIGH_RAM_START,
                MicrovmLayout.ramRanges(ramBytes).stream().mapToLong(r -> r.start() + r.size()).max().orElse(0));
        return new PciHostBridge.Window((top + MMIO64_ALIGN - 1) & -MMIO64_ALIGN, MMIO64_SIZE);
    }

    /** The checks that need no machine: the PCI toggle agrees with the devices, a server's socket exists. */
    static boolean check(OnOffAuto pci, List<Ivshmem> specs) {
        if (pci == OnOffAuto.OFF && !specs.isEmpty()) {
            throw new ConfigException("pci", specs.getFirst().label() + " is a PCI device, but pci is off");
        }
        if (specs.size() > PciHostBridge.SLOTS - 1) {
            throw new ConfigException("ivshmem", specs.size() + " ivshmem devices, but the PCI bus has "
                    + (PciHostBridge.SLOTS - 1) + " slots");
        }
        for (Ivshmem s : specs) {
            if (s instanceof Server server && !Files.exists(server.socket())) {
                throw new ConfigException("ivshmemServer", server.label() + " does not exist (is the server running?)");
            }
        }
        return pci.resolve(!specs.isEmpty());
    }

    /** The fixed windows of a machine with the bridge: its configuration ports and BAR windows. */
    static List<IoMapEntry> windows(long ramBytes) {
        PciHostBridge.Window high = mmio64(ramBytes);
        return List.of(
                new IoMapEntry(AddressSpace.PIO, PciHostBridge.CONFIG_PORT, PciHostBridge.CONFIG_PORTS, "pci-config",
                        IoMapEntry.Owner.KINDLING),
                new IoMapEntry(AddressSpace.MMIO, MMIO32.base(), MMIO32.size(), "pci-mmio32", IoMapEntry.Owner.KINDLING),
                new IoMapEntry(AddressSpace.MMIO, high.base(), high.size(), "pci-mmio64", IoMapEntry.Owner.KINDLING),
                new IoMapEntry(AddressSpace.PIO, IO.base(), IO.size(), "pci-io", IoMapEntry.Owner.KINDLING));
    }

    /** INTA# of each function's slot, routed as the bridge swizzles it. */
    static List<MpTable.PciInterrupt> interrupts(List<Ivshmem> specs) {
        List<MpTable.PciInterrupt> out = new ArrayList<>();
        for (int i = 0; i < specs.size(); i++) {
            int slot = i + 1;
            out.add(new MpTable.PciInterrupt(slot, 1, PciHostBridge.intxPin(slot, 1)));
        }
        return out;
    }

    /**
     * Puts the bridge and its functions on {@code machine}, which owns them (and the servers' clients)
     * from then on, so a failure part-way leaves nothing the machine's close would not free.
     */
    static PciHostBridge wire(Machine machine, InterruptService interrupts, IntFunction<IrqLine> lines,
                              List<Ivshmem> specs, long ramBytes) {
        PciHostBridge bridge = new PciHostBridge(MMIO32, mmio64(ramBytes), IO);
        machine.own(bridge);
        Map<Integer, PciIntx.Pin> pins = new HashMap<>();
        for (int i = 0; i < specs.size(); i++) {
            int slot = i + 1;
            if (bridge.nextSlot() != slot) {
                throw new IllegalStateException("PCI slot " + bridge.nextSlot() + " is next, not " + slot);
            }
            String name = "ivshmem" + i;
            PciIntx intx = new PciIntx(pins.computeIfAbsent(PciHostBridge.intxPin(slot, 1),
                    pin -> new PciIntx.Pin(lines.apply(pin))));
            DeviceContext context = machine.deviceContext(name, intx, interrupts);
            PciFunction f = ivshmem(machine, context, specs.get(i));
            machine.own(f); // after its server's client: closed before it (the bridge's close of it is then a no-op)
            try {
                bridge.add(f, intx);
            } catch (RuntimeException e) {
                throw new ConfigException("ivshmem", specs.get(i).label() + ": " + e.getMessage(), e);
            }
        }
        machine.attachPio(PciHostBridge.CONFIG_PORT, PciHostBridge.CONFIG_PORTS, bridge.configPorts());
        machine.attachMmio(MMIO32.base(), MMIO32.size(), bridge.mmioWindow());
        PciHostBridge.Window high = bridge.mmio64Window();
        machine.attachMmio(high.base(), high.size(), bridge.highMmioWindow());
        machine.attachPio(IO.base(), IO.size(), bridge.ioWindow());
        return bridge;
    }

    private static PciFunction ivshmem(Machine machine, DeviceContext context, Ivshmem spec) {
        return switch (spec) {
            case Plain p -> IvshmemDevice.plain(context, p.memory());
            case Server s -> {
                IvshmemClient client;
                try {
                    client = IvshmemClient.connect(s.socket());
                } catch (RuntimeException e) {
                    throw new ConfigException("ivshmemServer", s.label() + ": " + e.getMessage(), e);
                }
                machine.own(client); // owned before what uses it: closed after them
                IvshmemMemory memory;
                try {
                    memory = client.map();
                } catch (RuntimeException e) {
                    throw new ConfigException("ivshmemServer", s.label() + ": " + e.getMessage(), e);
                }
                machine.own(memory);
                int vectors = client.vectors();
                if (vectors < 1 || vectors > IvshmemDevice.MAX_VECTORS) {
                    throw new ConfigException("ivshmemServer", s.label() + " gives " + vectors
                            + " vectors; a doorbell device takes 1 to " + IvshmemDevice.MAX_VECTORS);
                }
                IvshmemDevice.Msix msix = null;
                if (s.msix()) {
                    // Each vector fires on the client's own eventfd in KVM, as QEMU's irqfds do: no thread in between.
                    Msix table = new Msix(vectors, IvshmemDevice.MSIX_BAR, 0, IvshmemDevice.MSIX_BAR_SIZE / 2,
                            v -> context.interrupts().msiVector(client.ownEventFds().get(v)));
                    machine.own(table);
                    msix = new IvshmemDevice.Msix(table::trigger, new IvshmemDevice.BarDelegate() {
                        @Override
                        public long read(long offset, int size) {
                            return table.read(offset, size);
                        }

                        @Override
                        public void write(long offset, int size, long value) {
                            table.write(offset, size, value);
                        }
                    }, table.capability(), true);
                }
                yield IvshmemDevice.doorbell(context, memory, client, vectors, msix);
            }
        };
    }
}
