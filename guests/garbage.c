/* garbage / garbage2: load an empty IDT, then jump into a buffer of bytes that
 * do not form a valid instruction. With no IDT the #UD escalates to a triple
 * fault (KVM_EXIT_SHUTDOWN or an internal error), never an exit port write.
 *   garbage:  0f 0b (ud2)
 *   garbage2: ff ff ff ... (built with -DGARBAGE2) */
#include "rt.h"

#ifdef GARBAGE2
static uint8_t code[16] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
#else
static uint8_t code[] = { 0x0f, 0x0b };
#endif

void guest_main(uint32_t start_info)
{
    (void)start_info;
    static const struct { uint16_t limit; uint32_t base; } __attribute__((packed)) no_idt;
    __asm__ volatile("lidt %0" :: "m"(no_idt));
    ((void (*)(void))code)();
}
