/*
 * float: libm and printf of doubles and long doubles.  Catches a wrong x87
 * or SSE start-up state (precision control, rounding) in the emulator.
 */
#include <math.h>
#include <stdio.h>

int main(void)
{
    double acc = 0;
    for (int i = 1; i < 2000; i++)
        acc += sin(i) * sqrt(i) + log(i) / exp(i % 7);
    printf("sum %.15g\n", acc);
    for (int i = 1; i < 6; i++)
        printf("sin(%d) %.17g sqrt(%d) %.17g\n", i, sin(i), i, sqrt(i));
    long double third = 1.0L / 3;
    printf("1/3 long double %.20Lg\n", third);
    printf("pow %.17g atan2 %.17g\n", pow(1.0001, 10000), atan2(1, 3));
    printf("rounding %.0f %.0f %.0f\n", 0.5, 1.5, 2.5);
    return 0;
}
