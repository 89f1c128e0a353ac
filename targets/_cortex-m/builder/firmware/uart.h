/* One driver per UART kind (uart_<kind>.c), chosen by the board's data.
 * UART_BASE and UART_IRQ come from board.toml [board_support.uart]. */
#ifndef TINYMLAAS_UART_H
#define TINYMLAAS_UART_H
#include <stdint.h>

void uart_init(void);
void uart_putc(uint8_t c);
/* The RX interrupt handler: moves every received byte to rx_push(). */
void uart_isr(void);
/* Provided by the application: called from uart_isr() for each byte. */
void rx_push(uint8_t c);

#endif
