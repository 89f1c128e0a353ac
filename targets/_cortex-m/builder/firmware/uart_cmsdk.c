/* ARM CMSDK APB UART (MPS2 FPGA images). The RX interrupt bit is sticky, so it
 * is cleared before draining: a byte that lands after the drain re-raises it. */
#include "cortex_m.h"
#include "uart.h"

#define DATA REG32(UART_BASE + 0x000u)
#define STATE REG32(UART_BASE + 0x004u)
#define CTRL REG32(UART_BASE + 0x008u)
#define INTCLEAR REG32(UART_BASE + 0x00Cu)
#define BAUDDIV REG32(UART_BASE + 0x010u)

#define STATE_TXFULL (1u << 0)
#define STATE_RXFULL (1u << 1)

void uart_init(void) {
    BAUDDIV = UART_DIVISOR;
    INTCLEAR = 0xFu;
    CTRL = (1u << 0) | (1u << 1) | (1u << 3); /* TX, RX, RX interrupt */
}

void uart_putc(uint8_t c) {
    while (STATE & STATE_TXFULL) {
    }
    DATA = c;
}

void uart_isr(void) {
    INTCLEAR = 1u << 1;
    while (STATE & STATE_RXFULL) {
        rx_push((uint8_t)DATA);
    }
}
