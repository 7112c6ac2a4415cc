/* tests/docs/quickstart_2.c fills "...read your text into tokens[0..n)..." in lm.h's QUICK
   START, for `make test`: a short text made here. */
{
    static const char text[] = "To train a language model, show it text and let it guess "
                               "the next byte; then show it the answer. ";
    for (n = 0; n < 4000; n++) tokens[n] = (unsigned char)text[n % (sizeof text - 1)];
}
