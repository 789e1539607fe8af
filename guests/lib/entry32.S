/*
 * PVH entry for the 32-bit test guests.
 *
 * The VMM enters _start in 32-bit protected mode, paging off, flat 4 GiB
 * segments, interrupts off, EBX = physical address of hvm_start_info. The
 * stub loads its own flat GDT (so interrupt delivery never depends on the
 * VMM's GDT), takes a per-CPU stack by atomic ticket (several vCPUs may enter
 * here at once; .bss must be zero, as an ELF loader leaves it), and calls
 * guest_main(start_info), then exit().
 */
#define MAX_CPUS    4
#define STACK_SHIFT 12                          /* 4 KiB per CPU */
#define CODE_SEL    0x08
#define DATA_SEL    0x10
#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f                               /* namesz */
    .long 4f - 3f                               /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY
1:  .asciz "Xen"
2:  .balign 4
3:  .long _start
4:  .balign 4
    .popsection

    .section .text.entry, "ax"
    .code32
    .globl _start
_start:
    cld
    lgdt    gdt_desc
    ljmp    $CODE_SEL, $1f
1:  movl    $DATA_SEL, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs

    movl    $1, %eax
    lock xaddl %eax, cpu_tickets
    cmpl    $MAX_CPUS, %eax
    jae     too_many_cpus
    incl    %eax
    shll    $STACK_SHIFT, %eax
    leal    stacks(%eax), %esp                  /* top of this CPU's stack */

    pushl   %ebx
    call    guest_main
    call    exit

too_many_cpus:                                  /* no stack to call exit() with */
    movb    $0xfe, %al
    outb    %al, $0x64
2:  cli
    hlt
    jmp     2b

    .section .rodata
    .balign 8
gdt:
    .quad   0                                   /* null */
    .quad   0x00cf9b000000ffff                  /* 0x08: code, base 0, limit 4 GiB, 32-bit */
    .quad   0x00cf93000000ffff                  /* 0x10: data, base 0, limit 4 GiB */
gdt_end:
gdt_desc:
    .word   gdt_end - gdt - 1
    .long   gdt

    .section .bss
    .balign 4
cpu_tickets:
    .long   0
    .balign 16
stacks:
    .skip   MAX_CPUS << STACK_SHIFT

    .section .note.GNU-stack, "", @progbits
