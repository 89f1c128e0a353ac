/* STM32 USART (F1 and F4 share the register layout). */
#include "cortex_m.h"
#include "uart.h"

#define SR REG32(UART_BASE + 0x00u)
#define DR REG32(UART_BASE + 0x04u)
#define BRR REG32(UART_BASE + 0x08u)
#define CR1 REG32(UART_BASE + 0x0Cu)

#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)

void uart_init(void) {
#ifdef UART_CLOCK_REG
    REG32(UART_CLOCK_REG) |= UART_CLOCK_BIT;
#endif
    BRR = UART_DIVISOR;
    CR1 = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2); /* UE, RXNEIE, TE, RE */
}

void uart_putc(uint8_t c) {
    while (!(SR & SR_TXE)) {
    }
    DR = c;
}

void uart_isr(void) {
    while (SR & SR_RXNE) {
        rx_push((uint8_t)DR);
    }
}
