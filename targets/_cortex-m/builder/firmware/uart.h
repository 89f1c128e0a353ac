/* One driver per UART kind (uart_<kind>.c), chosen by the board's data.
 * UART_BASE and UART_IRQ come from board.toml [board_support.uart]; UART_IRQ_COUNT
 * consecutive interrupt lines from UART_IRQ on all go to uart_isr (a SAM SERCOM has
 * four, most UARTs one). */
#ifndef TINYMLAAS_UART_H
#define TINYMLAAS_UART_H
#include <stdint.h>

#ifndef UART_IRQ_COUNT
#define UART_IRQ_COUNT 1
#endif

void uart_init(void);
void uart_putc(uint8_t c);
/* The RX interrupt handler: moves every received byte to rx_push(). */
void uart_isr(void);
/* Provided by the application: called from uart_isr() for each byte. */
void rx_push(uint8_t c);

#endif
