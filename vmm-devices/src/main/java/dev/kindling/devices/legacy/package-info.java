/**
 * The PC's legacy ISA devices and interrupt controllers, as plain {@link dev.kindling.device.Device}
 * models that know nothing of KVM: each is a register state machine, tested by calling
 * {@code read}/{@code write} directly.
 *
 * <p>Every model implements {@link dev.kindling.devices.legacy.BusMapped}: {@code busRanges()} gives
 * the windows to register, at the standard addresses. All are {@link AutoCloseable}; {@code close()}
 * ends the threads a model runs. No model throws because of what the guest does: accesses it does not
 * decode read as all ones and writes are ignored.
 *
 * <table>
 * <caption>Models, where they sit and how they drive their interrupt</caption>
 * <tr><th>model</th><th>bus, address</th><th>interrupt</th><th>threads</th></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.Serial16550}</td><td>PIO 0x3f8-0x3ff</td>
 *     <td>IRQ 4, level ({@code set}); a THR write drops and re-raises it</td><td>input reader, output writer</td></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.I8042}</td><td>PIO 0x60, 0x64</td>
 *     <td>IRQ 1 and 12, level, dropped between bytes; reset through a {@code Runnable}</td><td>none</td></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.Rtc}</td><td>PIO 0x70-0x71</td>
 *     <td>IRQ 8, level until register C is read</td><td>timer, only while an interrupt is enabled</td></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.Pit8254}</td><td>PIO 0x40-0x43, 0x61</td>
 *     <td>IRQ 0, edge ({@code pulse})</td><td>timer</td></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.Pic8259}</td><td>PIO 0x20-0x21, 0xa0-0xa1, 0x4d0-0x4d1</td>
 *     <td>inputs: {@code line(irq)}; output: {@link dev.kindling.devices.legacy.PicOutput}</td><td>none</td></tr>
 * <tr><td>{@link dev.kindling.devices.legacy.IoApic}</td><td>MMIO 0xfec00000-0xfec00fff</td>
 *     <td>inputs: {@code line(pin)}; output: MSIs to {@link dev.kindling.devices.legacy.MsiSink}</td>
 *     <td>timer, only to slow an EOI storm</td></tr>
 * </table>
 *
 * <p>The devices drive levels the way QEMU's ISA devices do; whether a level or an edge counts is the
 * interrupt controller's business (PC ISA IRQs are edge-triggered in the 8259 and the IOAPIC), and
 * every model makes sure each new cause is a new rising edge. On a PC each ISA IRQ reaches both
 * controllers: {@link dev.kindling.devices.legacy.IrqLines#fanOut} makes one line of the two (ISA IRQ 0
 * goes to IOAPIC pin 2).
 */
package dev.kindling.devices.legacy;
