/* ioevent: 100 x outw 0x1234 to port 0x620 (meant for an ioeventfd with
 * datamatch, so none of them exits to user space), then outl 100 to 0x624. */
#include "rt.h"

#define PORT_EVENT  0x620
#define PORT_DONE   0x624
#define EVENT_VALUE 0x1234
#define EVENTS      100

void guest_main(uint32_t start_info)
{
    (void)start_info;
    for (int i = 0; i < EVENTS; i++)
        outw(PORT_EVENT, EVENT_VALUE);
    outl(PORT_DONE, EVENTS);
}
