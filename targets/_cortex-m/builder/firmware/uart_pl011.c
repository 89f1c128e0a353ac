/* ARM PrimeCell PL011 (Stellaris LM3S UART0). FIFOs off: one RX interrupt per byte. */
#include "cortex_m.h"
#include "uart.h"

#define DR REG32(UART_BASE + 0x000u)
#define FR REG32(UART_BASE + 0x018u)
#define IBRD REG32(UART_BASE + 0x024u)
#define FBRD REG32(UART_BASE + 0x028u)
#define LCRH REG32(UART_BASE + 0x02Cu)
#define CR REG32(UART_BASE + 0x030u)
#define IMSC REG32(UART_BASE + 0x038u)
#define ICR REG32(UART_BASE + 0x044u)

#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)

void uart_init(void) {
#ifdef UART_CLOCK_REG
    REG32(UART_CLOCK_REG) |= UART_CLOCK_BIT;
#endif
    CR = 0;
    IBRD = UART_DIVISOR;
    FBRD = 0;
    LCRH = 0x60u; /* 8N1, FIFO disabled */
    ICR = 0x7FFu;
    IMSC = (1u << 4) | (1u << 6); /* RX, RX timeout */
    CR = (1u << 0) | (1u << 8) | (1u << 9); /* UARTEN, TXE, RXE */
}

void uart_putc(uint8_t c) {
    while (FR & FR_TXFF) {
    }
    DR = c;
}

void uart_isr(void) {
    while (!(FR & FR_RXFE)) {
        rx_push((uint8_t)DR);
    }
}
