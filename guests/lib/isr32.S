/*
 * Common tail of the interrupt entries made with ISR_ENTRY() (rt.h).
 *
 * A same-privilege return without IRET: KVM's instruction emulator, which
 * runs CPL0 guest code on some hosts, only emulates IRET in real mode, and a
 * protected-mode IRET there stops the vCPU with KVM_EXIT_INTERNAL_ERROR.
 * The interrupt frame (EIP, CS, EFLAGS) stays in place until the final far
 * return, so an interrupt taken after POPF re-enables interrupts just nests
 * one frame deeper; unlike IRET the two steps are not atomic.
 */
    .text
    .code32
    .globl isr_return
isr_return:
    pushl   8(%esp)                             /* copy of the saved EFLAGS */
    popfl
    lret    $4                                  /* EIP, CS; drop the saved EFLAGS */

    .section .note.GNU-stack, "", @progbits
