package dev.kindling.kvm;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kindling.sys.CLayouts;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The special registers, {@code struct kvm_sregs}: segments, descriptor tables, control registers,
 * EFER, the APIC base and the 256-bit bitmap of pending external interrupts (four longs).
 */
public record Sregs(Segment cs, Segment ds, Segment es, Segment fs, Segment gs, Segment ss,
        Segment tr, Segment ldt, DescriptorTable gdt, DescriptorTable idt,
        long cr0, long cr2, long cr3, long cr4, long cr8, long efer, long apicBase, long[] interruptBitmap) {

    private static final String[] SEGMENTS = {"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"};
    private static final String[] LONGS = {"cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"};
    private static final long[] SEGMENT_AT = new long[SEGMENTS.length];
    private static final long[] LONG_AT = new long[LONGS.length];
    private static final long GDT = off("gdt"), IDT = off("idt"), BITMAP = off("interrupt_bitmap");
    private static final int BITMAP_LONGS = 4;

    static {
        for (int i = 0; i < SEGMENTS.length; i++) {
            SEGMENT_AT[i] = off(SEGMENTS[i]);
        }
        for (int i = 0; i < LONGS.length; i++) {
            LONG_AT[i] = off(LONGS[i]);
        }
    }

    private static long off(String field) {
        return CLayouts.offsetOf(KvmStructs.KVM_SREGS, field);
    }

    public Sregs {
        if (interruptBitmap.length != BITMAP_LONGS) {
            throw new IllegalArgumentException("interrupt bitmap has " + interruptBitmap.length + " longs, not 4");
        }
        interruptBitmap = interruptBitmap.clone();
    }

    @Override
    public long[] interruptBitmap() {
        return interruptBitmap.clone();
    }

    static Sregs read(MemorySegment m) {
        Segment[] s = new Segment[SEGMENTS.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = Segment.read(m, SEGMENT_AT[i]);
        }
        long[] v = new long[LONGS.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = m.get(JAVA_LONG, LONG_AT[i]);
        }
        long[] bitmap = new long[BITMAP_LONGS];
        for (int i = 0; i < BITMAP_LONGS; i++) {
            bitmap[i] = m.get(JAVA_LONG, BITMAP + 8L * i);
        }
        return new Sregs(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                DescriptorTable.read(m, GDT), DescriptorTable.read(m, IDT),
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], bitmap);
    }

    void write(MemorySegment m) {
        Segment[] s = {cs, ds, es, fs, gs, ss, tr, ldt};
        for (int i = 0; i < s.length; i++) {
            s[i].write(m, SEGMENT_AT[i]);
        }
        gdt.write(m, GDT);
        idt.write(m, IDT);
        long[] v = {cr0, cr2, cr3, cr4, cr8, efer, apicBase};
        for (int i = 0; i < v.length; i++) {
            m.set(JAVA_LONG, LONG_AT[i], v[i]);
        }
        for (int i = 0; i < BITMAP_LONGS; i++) {
            m.set(JAVA_LONG, BITMAP + 8L * i, interruptBitmap[i]);
        }
    }

    public Sregs withCs(Segment v) {
        return new Sregs(v, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    /** Sets ds, es, fs, gs and ss at once, as boot code does. */
    public Sregs withDataSegments(Segment v) {
        return new Sregs(cs, v, v, v, v, v, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withDs(Segment v) {
        return new Sregs(cs, v, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withSs(Segment v) {
        return new Sregs(cs, ds, es, fs, gs, v, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withTr(Segment v) {
        return new Sregs(cs, ds, es, fs, gs, ss, v, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withLdt(Segment v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, v, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withGdt(DescriptorTable v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, v, idt, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withIdt(DescriptorTable v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, v, cr0, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withCr0(long v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, v, cr2, cr3, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withCr3(long v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, v, cr4, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withCr4(long v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, v, cr8, efer, apicBase, interruptBitmap);
    }

    public Sregs withEfer(long v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, v, apicBase, interruptBitmap);
    }

    public Sregs withApicBase(long v) {
        return new Sregs(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, v, interruptBitmap);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Sregs r && cs.equals(r.cs) && ds.equals(r.ds) && es.equals(r.es) && fs.equals(r.fs)
                && gs.equals(r.gs) && ss.equals(r.ss) && tr.equals(r.tr) && ldt.equals(r.ldt)
                && gdt.equals(r.gdt) && idt.equals(r.idt) && cr0 == r.cr0 && cr2 == r.cr2 && cr3 == r.cr3
                && cr4 == r.cr4 && cr8 == r.cr8 && efer == r.efer && apicBase == r.apicBase
                && Arrays.equals(interruptBitmap, r.interruptBitmap);
    }

    @Override
    public int hashCode() {
        return 31 * Objects.hash(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer,
                apicBase) + Arrays.hashCode(interruptBitmap);
    }

    @Override
    public String toString() {
        return "Sregs[cs=" + cs + ", ds=" + ds + ", es=" + es + ", fs=" + fs + ", gs=" + gs + ", ss=" + ss
                + ", tr=" + tr + ", ldt=" + ldt + ", gdt=" + gdt + ", idt=" + idt
                + ", cr0=0x" + Long.toHexString(cr0) + ", cr2=0x" + Long.toHexString(cr2)
                + ", cr3=0x" + Long.toHexString(cr3) + ", cr4=0x" + Long.toHexString(cr4) + ", cr8=" + cr8
                + ", efer=0x" + Long.toHexString(efer) + ", apicBase=0x" + Long.toHexString(apicBase)
                + ", interruptBitmap=" + Arrays.toString(interruptBitmap) + "]";
    }
}
