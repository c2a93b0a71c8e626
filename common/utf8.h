#ifndef ML_UTF8_H
#define ML_UTF8_H

/*
 * UTF-8 decoding, strict: for escaping text before it is printed
 * (common/log.c) and for writing it into YAML (orchestrator/render).
 */

/*
 * Decode the sequence at s (n > 0 bytes left): the code point in *cp and
 * the sequence's length returned, or 0 when the bytes are not valid UTF-8
 * (a bad lead or continuation byte, a truncated sequence, an overlong
 * form, a surrogate, a value past U+10FFFF).
 */
size_t ml_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
