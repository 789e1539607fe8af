package dev.kindling.boot;

import dev.kindling.fdt.FdtWriter;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The flattened device tree that tells an x86 Linux guest of platform devices it cannot probe
 * (passed-through VFIO-platform devices). x86 Linux reads a tree from {@code setup_data}
 * ({@code SETUP_DTB}, {@link LinuxBoot}) when built with {@code CONFIG_OF} and
 * {@code CONFIG_OF_EARLY_FLATTREE} (arch/x86/kernel/devicetree.c; 6.1 also needs the test kernel's
 * patches 0004 and 0005, guest/README.md); the MP table keeps describing the CPUs and the ISA
 * interrupts.
 *
 * <pre>
 * / { compatible = "kindling,microvm"; #address-cells = &lt;2&gt;; #size-cells = &lt;2&gt;;
 *     interrupt-controllers { #address-cells, #size-cells = &lt;2&gt;; ranges;
 *         ioapic: interrupt-controller@fec00000 { compatible = "intel,ce4100-ioapic";
 *             reg = &lt;0 0xfec00000 0 0x1000&gt;; interrupt-controller; #interrupt-cells = &lt;2&gt;;
 *             #address-cells = &lt;0&gt;; }; };
 *     NAME@ADDR { compatible = ...; reg = &lt;regions&gt;; interrupt-parent = &lt;&amp;ioapic&gt;;
 *         interrupts = &lt;GSI TYPE&gt; ...; }; ... };
 * </pre>
 *
 * Interrupts name the IOAPIC pin (GSI) and Linux's x86 type index: 1 active-high level, 3 rising
 * edge. The IOAPIC sits in a node without {@code compatible}, so that Linux makes no platform
 * device of it (which would claim the IOAPIC's registers); Linux creates one for each device at the
 * root, named {@code ADDR.NAME}.
 */
public final class X86DeviceTree {
    /**
     * Linux numbers the IOAPICs of a device tree from 1 and finds the MP table's interrupt entries
     * of an IOAPIC by that id: with a device tree the MP table's IOAPIC has this id.
     */
    public static final int LINUX_IOAPIC_ID = 1;
    public static final int IOAPIC_PHANDLE = 1;
    /** Linux's x86 device-tree interrupt types (of_ioapic_type). */
    public static final int IRQ_TYPE_LEVEL_HIGH = 1, IRQ_TYPE_EDGE_RISING = 3;
    public static final String MACHINE_COMPATIBLE = "kindling,microvm";

    /** An interrupt of a device: IOAPIC pin {@code gsi}, level-triggered active high or rising edge. */
    public record Interrupt(int gsi, boolean level) {
        public Interrupt {
            if (gsi < 0 || gsi >= MicrovmLayout.IOAPIC_PINS) {
                throw new IllegalArgumentException("GSI " + gsi + " is not an IOAPIC pin (0-"
                        + (MicrovmLayout.IOAPIC_PINS - 1) + ")");
            }
        }
    }

    /**
     * A platform device: its {@code compatible} list (most specific first), its MMIO regions in
     * order (Linux's resources 0, 1, ...) and its interrupts.
     */
    public record PlatformDevice(List<String> compatible, List<AddressRange> regions, List<Interrupt> interrupts) {
        public PlatformDevice {
            compatible = List.copyOf(compatible);
            regions = List.copyOf(regions);
            interrupts = List.copyOf(interrupts);
            if (compatible.isEmpty() || compatible.stream().anyMatch(String::isEmpty)) {
                throw new IllegalArgumentException("a platform device needs a compatible string: " + compatible);
            }
            if (regions.isEmpty()) {
                throw new IllegalArgumentException(compatible.get(0) + " has no region");
            }
        }

        /** The node's name: the first compatible's model part (after its comma), at its first region. */
        public String nodeName() {
            String model = compatible.get(0).substring(compatible.get(0).lastIndexOf(',') + 1)
                    .replaceAll("[^A-Za-z0-9,._+-]", "-");
            if (model.isEmpty() || !Character.isLetter(model.charAt(0))) {
                model = "device-" + model;
            }
            if (model.length() > FdtWriter.MAX_NODE_NAME) {
                model = model.substring(0, FdtWriter.MAX_NODE_NAME);
            }
            return model + "@" + Long.toHexString(regions.get(0).start());
        }
    }

    private X86DeviceTree() {
    }

    /** The blob describing {@code devices}. */
    public static byte[] build(List<PlatformDevice> devices) {
        FdtWriter w = new FdtWriter();
        FdtWriter.Node root = w.beginNode("");
        w.propertyString("compatible", MACHINE_COMPATIBLE);
        w.propertyU32("#address-cells", 2);
        w.propertyU32("#size-cells", 2);

        FdtWriter.Node controllers = w.beginNode("interrupt-controllers");
        w.propertyU32("#address-cells", 2);
        w.propertyU32("#size-cells", 2);
        w.propertyEmpty("ranges");
        FdtWriter.Node ioapic = w.beginNode("interrupt-controller@" + Long.toHexString(MicrovmLayout.IOAPIC_ADDRESS));
        w.propertyString("compatible", "intel,ce4100-ioapic");
        w.propertyU64s("reg", MicrovmLayout.IOAPIC_ADDRESS, MicrovmLayout.PAGE_SIZE);
        w.propertyEmpty("interrupt-controller");
        w.propertyU32("#interrupt-cells", 2);
        w.propertyU32("#address-cells", 0);
        w.propertyU32("phandle", IOAPIC_PHANDLE);
        w.endNode(ioapic);
        w.endNode(controllers);

        Set<String> names = new HashSet<>();
        for (PlatformDevice d : devices) {
            String name = d.nodeName();
            if (!names.add(name)) {
                throw new IllegalArgumentException("two platform devices named " + name);
            }
            FdtWriter.Node n = w.beginNode(name);
            w.propertyStrings("compatible", d.compatible());
            long[] reg = new long[d.regions().size() * 2];
            for (int i = 0; i < d.regions().size(); i++) {
                reg[2 * i] = d.regions().get(i).start();
                reg[2 * i + 1] = d.regions().get(i).size();
            }
            w.propertyU64s("reg", reg);
            if (!d.interrupts().isEmpty()) {
                w.propertyU32("interrupt-parent", IOAPIC_PHANDLE);
                int[] cells = new int[d.interrupts().size() * 2];
                for (int i = 0; i < d.interrupts().size(); i++) {
                    Interrupt irq = d.interrupts().get(i);
                    cells[2 * i] = irq.gsi();
                    cells[2 * i + 1] = irq.level() ? IRQ_TYPE_LEVEL_HIGH : IRQ_TYPE_EDGE_RISING;
                }
                w.propertyU32s("interrupts", cells);
            }
            w.endNode(n);
        }
        w.endNode(root);
        return w.finish();
    }
}
