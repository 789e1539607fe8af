/*
 * Entry for the 64-bit guest. Not PVH: the VMM enters _start (the ELF entry,
 * 0x100000) already in long mode with identity-mapped page tables and a
 * 64-bit code segment; the guest sets its own stack.
 */
    .section .text.entry, "ax"
    .code64
    .globl _start
_start:
    cld
    leaq    stack_top(%rip), %rsp
    xorl    %edi, %edi                          /* guest_main(start_info = 0) */
    call    guest_main
    call    exit

    .section .bss
    .balign 16
    .skip   4096
stack_top:

    .section .note.GNU-stack, "", @progbits
