/* STM32F7 USART (RM0385 section 31.8): the newer ST layout with separate ISR, RDR and
 * TDR registers (F0/F3/F7/L4 share it; F1/F4 use uart_stm32.c). */
#include "cortex_m.h"
#include "uart.h"

#define CR1 REG32(UART_BASE + 0x00u)
#define BRR REG32(UART_BASE + 0x0Cu)
#define ISR REG32(UART_BASE + 0x1Cu)
#define ICR REG32(UART_BASE + 0x20u)
#define RDR REG32(UART_BASE + 0x24u)
#define TDR REG32(UART_BASE + 0x28u)

#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)

void uart_init(void) {
#ifdef UART_CLOCK_REG
    REG32(UART_CLOCK_REG) |= UART_CLOCK_BIT;
#endif
    BRR = UART_DIVISOR;
    CR1 = CR1_RXNEIE | CR1_TE | CR1_RE | CR1_UE;
}

void uart_putc(uint8_t c) {
    while (!(ISR & ISR_TXE)) {
    }
    TDR = c;
}

void uart_isr(void) {
    while (ISR & ISR_RXNE) {
        rx_push((uint8_t)RDR);
    }
    if (ISR & ISR_ORE) { /* an overrun also raises the interrupt: clear it, or it repeats */
        ICR = ISR_ORE;
    }
}
