"""Licence plates: corner detection, rectification, CTC recognition and plate grammars."""
