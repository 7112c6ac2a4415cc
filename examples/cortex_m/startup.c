/* startup.c - what runs before main() on a Cortex-M4F: the vector table and the reset
   handler, for the memory map of cortex_m.ld (flash at 0x00000000, RAM at 0x20000000, as
   QEMU's mps2-an386 board has them).

   At reset the core loads its stack pointer from word 0 of the vector table and jumps to
   the address in word 1. Nothing else is set up: the FPU is off, .data (initialised
   variables) is still only in flash, .bss is whatever the RAM held. So the reset handler
     1. turns the FPU on - until then the first float instruction faults, and since the
        fault handler itself is compiled with the same float ABI the core locks up;
     2. copies .data from flash to RAM and zeroes .bss;
     3. starts the C library (newlib, with librdimon from --specs=rdimon.specs): opens
        the semihosting file handles stdin, stdout and stderr, runs the constructors,
        then calls main() and hands its return value to exit(), which tells the host
        (semihosting SYS_EXIT) so that QEMU quits with that status.
   Step 3 is what newlib's own _start (crt0) does, but we do not call _start: it first
   asks the host where the stack should go (semihosting SYS_HEAPINFO), and QEMU answers
   with the top of the board's 16 MB PSRAM at 0x22000000, outside the RAM of cortex_m.ld.
   On a chip the stack is where the linker script puts it, so we keep it there, and the
   RAM figures the linker gives are the whole truth.
   A fault of any kind prints one line by semihosting and exits with an error, so a crash
   ends the run instead of hanging it. And since a microcontroller program must know how
   much stack it needs, the reset handler paints the stack with a pattern, and at exit
   the first word that lost the pattern tells the high-water mark, printed on stderr.

   Build: see the Makefile beside this file. Only integer code runs before step 1 ends. */
#include <stdint.h>
#include <stdlib.h>                  /* atexit, exit */
#include <unistd.h>                  /* write  */

/* From the linker script. */
extern uint32_t __data_load__[];     /* .data's initial values, in flash                  */
extern uint32_t __data_start__[], __data_end__[];   /* .data in RAM                       */
extern uint32_t __bss_start__[], __bss_end__[];
extern uint32_t __StackTop[];        /* the top of RAM: the stack grows down from here    */
extern uint32_t __StackLimit[];      /* ... to here: STACK_SIZE below the top             */

extern void initialise_monitor_handles(void);  /* librdimon: stdin/out/err by semihosting */
extern void __libc_init_array(void);           /* newlib: run the constructors            */
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

/* ---------------------------------------------------------------------------------------
   Semihosting: the debugger (here QEMU) services "bkpt 0xAB" with the operation in r0 and
   its argument in r1. Only the fault handler calls it directly; everything else goes
   through newlib's librdimon.
   --------------------------------------------------------------------------------------- */
#define SYS_WRITE0 0x04              /* print a NUL-terminated string                     */
#define SYS_EXIT 0x18                /* stop, with a reason code                          */
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static void semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

/* Any fault or unexpected interrupt: say so and stop with an error status. */
void Fault_Handler(void) {
    semihost(SYS_WRITE0, "cortex_m: fault (HardFault, MemManage, BusFault or UsageFault)\n");
    semihost(SYS_EXIT, (const void *)ADP_STOPPED_RUNTIME_ERROR);
    for (;;) { }
}

/* ---------------------------------------------------------------------------------------
   The vector table: the initial stack pointer, then the handlers of the 15 system
   exceptions (0 = reserved). .vectors is placed at address 0 by the linker script. No
   peripheral interrupts are enabled, so the table stops there.
   --------------------------------------------------------------------------------------- */
typedef void (*vector_fn)(void);
__attribute__((section(".vectors"), used))
const vector_fn vector_table[16] = {
    (vector_fn)(uintptr_t)__StackTop,  /*  0: initial SP                                  */
    Reset_Handler,                     /*  1: reset                                       */
    Fault_Handler,                     /*  2: NMI                                         */
    Fault_Handler,                     /*  3: HardFault                                   */
    Fault_Handler,                     /*  4: MemManage                                   */
    Fault_Handler,                     /*  5: BusFault                                    */
    Fault_Handler,                     /*  6: UsageFault                                  */
    0, 0, 0, 0,                        /*  7-10: reserved                                 */
    Fault_Handler,                     /* 11: SVCall                                      */
    Fault_Handler,                     /* 12: DebugMonitor                                */
    0,                                 /* 13: reserved                                    */
    Fault_Handler,                     /* 14: PendSV                                      */
    Fault_Handler                      /* 15: SysTick                                     */
};

/* ---------------------------------------------------------------------------------------
   Stack high-water mark: painted at reset, measured at exit.
   --------------------------------------------------------------------------------------- */
#define STACK_PAINT 0x5AC4C0DEu

static void stack_report(void) {
    const uint32_t *p = __StackLimit;
    uint32_t used, size = (uint32_t)((__StackTop - __StackLimit) * 4);
    char msg[80], num[12];
    int n = 0, k = 0;
    const char *s;
    while (p < __StackTop && *p == STACK_PAINT) p++;   /* the deepest word ever written */
    used = (uint32_t)((__StackTop - p) * 4);
    for (s = "stack: "; *s; s++) msg[n++] = *s;
    do { num[k++] = (char)('0' + used % 10); used /= 10; } while (used);
    while (k) msg[n++] = num[--k];
    for (s = " bytes used at most, of "; *s; s++) msg[n++] = *s;
    do { num[k++] = (char)('0' + size % 10); size /= 10; } while (size);
    while (k) msg[n++] = num[--k];
    for (s = p == __StackLimit ? " reserved (all of it: it may have overflowed)\n" : " reserved\n"; *s; s++)
        msg[n++] = *s;
    (void)write(2, msg, (size_t)n);
}

/* run by newlib's _start before main(): report the stack when the program ends */
/* a constructor: runs before main() and registers the report for exit() */
__attribute__((constructor)) static void stack_watch(void) { atexit(stack_report); }

/* ---------------------------------------------------------------------------------------
   Reset.
   --------------------------------------------------------------------------------------- */
#define CPACR (*(volatile uint32_t *)0xE000ED88)  /* Coprocessor Access Control Register */

void Reset_Handler(void) {
    uint32_t *src, *dst;
    /* 1. full access to coprocessors 10 and 11 (the FPU): CPACR bits 20-23; then wait for
          the write to take effect before any later instruction could use the FPU */
    CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    /* 2. .data from flash to RAM, .bss to zero (word by word: the linker script aligns
          both to 4 bytes). The compiler may turn these loops into memcpy and memset
          calls; newlib's are integer-only and use no .data, so that is fine. */
    for (src = __data_load__, dst = __data_start__; dst < __data_end__;) *dst++ = *src++;
    for (dst = __bss_start__; dst < __bss_end__;) *dst++ = 0;
    /* paint the stack below this function's frame (with a margin) */
    __asm__ volatile("mov %0, sp" : "=r"(src));
    for (dst = __StackLimit; dst < src - 64;) *dst++ = STACK_PAINT;
    /* 3. the C library, then main() */
    initialise_monitor_handles();
    __libc_init_array();
    exit(main());
}
